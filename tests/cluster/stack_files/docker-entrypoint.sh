#!/bin/sh
# The MySQL image's entrypoint contract, for MariaDB from Debian packages (the trillian chart's
# db_server): env MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD; arguments go
# to mariadbd. On an empty datadir: install the system tables, then, on a temporary server that
# listens on no network and on another socket (so the readiness probe fails until the real server
# runs), create root@'%', the database, the user with all rights on it, and run
# /docker-entrypoint-initdb.d/*.sql in the database.
set -eu
DATADIR=/var/lib/mysql
mkdir -p /run/mysqld "$DATADIR"
chown mysql:mysql /run/mysqld "$DATADIR"
quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
if [ ! -d "$DATADIR/mysql" ]; then
  echo "init: installing the system tables in $DATADIR"
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db --skip-name-resolve \
    >/tmp/install-db.log 2>&1 || { cat /tmp/install-db.log; exit 1; }
  socket=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket=$socket "$@" &
  pid=$!
  tries=0
  until mariadb -uroot -S $socket -e 'SELECT 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ $tries -gt 120 ] && { echo "init: the temporary server did not start"; exit 1; }
    sleep 0.5
  done
  {
    if [ -n "${MYSQL_ROOT_PASSWORD:-}" ]; then
      echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(quote "$MYSQL_ROOT_PASSWORD")';"
      echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    fi
    [ -n "${MYSQL_DATABASE:-}" ] && echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    if [ -n "${MYSQL_USER:-}" ]; then
      echo "CREATE USER '$(quote "$MYSQL_USER")'@'%' IDENTIFIED BY '$(quote "${MYSQL_PASSWORD:-}")';"
      [ -n "${MYSQL_DATABASE:-}" ] && echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$(quote "$MYSQL_USER")'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb -uroot -S $socket
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    echo "init: running $script"
    mariadb -uroot -S $socket ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} < "$script"
  done
  kill $pid
  wait $pid || true
  echo "init: done"
fi
exec mariadbd --user=mysql --datadir="$DATADIR" "$@"

#!/bin/sh
# /etc/init.d/mysql: the trillian chart's liveness and readiness probes run "/etc/init.d/mysql
# status"; it succeeds once the real server answers on its normal socket.
case "${1:-}" in
  status)
    if mariadb -uroot -S /run/mysqld/mysqld.sock -e 'SELECT 1' >/dev/null 2>&1; then
      echo "MariaDB is running"
    else
      echo "MariaDB is stopped"
      exit 3
    fi ;;
  *) echo "usage: $0 status"; exit 1 ;;
esac

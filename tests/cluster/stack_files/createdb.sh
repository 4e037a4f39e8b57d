#!/bin/sh
# Stands in for ghcr.io/sigstore/scaffolding/createdb (sigstore/scaffolding cmd/trillian/createdb,
# not on the Go module proxy). The trillian chart's Job passes
#   --db_name=DB --mysql_uri=USER:PASSWORD@tcp(HOST:PORT)/
# Like upstream, it waits for the database server, then creates Trillian's tables and indexes
# where missing (storage.sql made idempotent) in DB, which must exist: it creates no database.
set -eu
db=trillian uri=
for arg in "$@"; do
  case $arg in
    --db_name=*) db=${arg#*=} ;;
    --mysql_uri=*) uri=${arg#*=} ;;
  esac
done
[ -n "$uri" ] || { echo "createdb: --mysql_uri is required"; exit 2; }
credentials=${uri%%@tcp(*}
address=${uri#*@tcp(}
address=${address%%)*}
user=${credentials%%:*}
export MYSQL_PWD="${credentials#*:}"   # the environment, not the command line: no password in ps
host=${address%:*} port=${address##*:}
tries=0
until out=$(mariadb --connect-timeout=5 -h"$host" -P"$port" -u"$user" "$db" < /usr/share/trillian/storage.sql 2>&1); do
  tries=$((tries + 1))
  [ $tries -gt 60 ] && { echo "createdb: giving up on $host:$port/$db as $user: $out"; exit 1; }
  sleep 2
done
echo "createdb: Trillian's schema is in $db:" $(mariadb -h"$host" -P"$port" -u"$user" "$db" -N -e 'SHOW TABLES')

#!/bin/sh
# Stands in for docker.io/nginxinc/nginx-unprivileged (a static web server; no nginx here): serves
# /usr/share/nginx/html over HTTP on port 8080, run as 101 (the image's user), no arguments,
# writing nothing (a read-only root filesystem will do). busybox's httpd serves files byte for
# byte with their length, follows the links a ConfigMap volume's files are, answers 404 for a
# missing file and lists no directory; /etc/httpd.conf gives .json its type, as nginx's does.
# httpd as PID 1 would ignore SIGTERM (it sets no handler), so the shell waits for it and
# passes TERM and INT on: the container stops at once, as nginx does.
httpd=
stop() {
  kill -TERM "$httpd" 2>/dev/null
  wait "$httpd"
  exit 0
}
trap stop TERM INT
/usr/sbin/httpd -f -v -p 8080 -h /usr/share/nginx/html -c /etc/httpd.conf &
httpd=$!
wait "$httpd"

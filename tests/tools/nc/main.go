// nc: stands in for docker.io/subfuzion/netcat in the charts' wait-for init containers, which run
//
//	sh -c "until nc -z -w 10 HOST PORT; do ...; sleep 5; done"
//
// Only `nc -z [-v] [-w SEC] HOST PORT` is implemented: exit 0 when a TCP connection to HOST:PORT
// opens within SEC seconds, 1 when it does not, 2 on a usage error. (Busybox's nc has no -z.)
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	zero := flag.Bool("z", false, "only check that the port accepts a connection")
	wait := flag.Int("w", 10, "connect timeout in seconds")
	verbose := flag.Bool("v", false, "say whether the port is open")
	flag.Parse()
	if !*zero || flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: nc -z [-v] [-w SEC] HOST PORT (only -z is implemented)")
		os.Exit(2)
	}
	address := net.JoinHostPort(flag.Arg(0), flag.Arg(1))
	conn, err := net.DialTimeout("tcp", address, time.Duration(*wait)*time.Second)
	if err != nil {
		if *verbose {
			fmt.Fprintf(os.Stderr, "nc: %s: %v\n", address, err)
		}
		os.Exit(1)
	}
	conn.Close()
	if *verbose {
		fmt.Fprintf(os.Stderr, "nc: %s open\n", address)
	}
}

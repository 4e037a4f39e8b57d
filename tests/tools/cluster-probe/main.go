// cluster-probe: one small static program for the test cluster's images, standard library only.
//
//	cluster-probe pause          the pod sandbox (stands in for registry.k8s.io/pause): waits for
//	                             SIGTERM/SIGINT and reaps zombies, as PID 1 of a pod must
//	cluster-probe serve [ADDR]   HTTP: "/" answers "hello from HOST", "/healthz" answers "ok"
//	cluster-probe get URL        GET URL, print the body; exit 1 unless the status is 200
//	cluster-probe lookup NAME    resolve NAME with Go's own resolver (no NSS), print the addresses
//
// Debian's static busybox (glibc) crashes resolving names in a pod, so the tests use this for
// HTTP and DNS checks from inside pods.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: cluster-probe pause | serve [ADDR] | get URL | lookup NAME")
	}
	switch os.Args[1] {
	case "pause":
		pause()
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		serve(addr)
	case "get":
		need(3)
		get(os.Args[2])
	case "lookup":
		need(3)
		lookup(os.Args[2])
	default:
		fail("unknown command " + os.Args[1])
	}
}

func need(n int) {
	if len(os.Args) < n {
		fail("missing argument for " + os.Args[1])
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(2)
}

func pause() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for {
			var status syscall.WaitStatus
			if _, err := syscall.Wait4(-1, &status, 0, nil); err != nil {
				time.Sleep(time.Second)
			}
		}
	}()
	<-signals
}

func serve(addr string) {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	fmt.Println("listening on", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		fail(err.Error())
	}
}

func get(url string) {
	client := http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer response.Body.Close()
	if _, err := io.Copy(os.Stdout, response.Body); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if response.StatusCode != http.StatusOK {
		fmt.Println("status", response.StatusCode)
		os.Exit(1)
	}
}

func lookup(name string) {
	addresses, err := net.LookupHost(name)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(addresses)
}

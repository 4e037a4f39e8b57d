// referrers-registry serves go-containerregistry's registry (the one `crane registry serve`
// runs) with its OCI 1.1 referrers API switched on, which crane's command leaves off.
// The tests use it as the registry that has the referrers API.
//
//	referrers-registry -address 127.0.0.1:PORT
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatalln(err)
	}
	log.Printf("serving on %s", listener.Addr())
	server := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           registry.New(registry.WithReferrersSupport(true)),
	}
	log.Fatalln(server.Serve(listener))
}

package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// runFakeGCS serves fake-gcs-server's JSON and XML APIs over plain HTTP with one empty bucket.
// The XML API (what object_store speaks) answers requests addressed to -public-host.
func runFakeGCS(args []string) {
	fs := flag.NewFlagSet("fake-gcs-server", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.Uint("port", 4443, "port to listen on")
	publicHost := fs.String("public-host", "", "host:port clients address (default host:port)")
	bucket := fs.String("bucket", "kubestep", "bucket to create")
	_ = fs.Parse(args)
	if *publicHost == "" {
		*publicHost = fmt.Sprintf("%s:%d", *host, *port)
	}
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Host:       *host,
		Port:       uint16(*port),
		Scheme:     "http",
		PublicHost: *publicHost,
		NoListener: false,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-gcs-server: %v\n", err)
		os.Exit(1)
	}
	server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: *bucket})
	fmt.Fprintf(os.Stderr, "fake-gcs-server: serving %s on %s\n", server.URL(), *publicHost)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	server.Stop()
}

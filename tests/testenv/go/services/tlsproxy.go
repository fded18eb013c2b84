package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

// runTLSProxy serves HTTPS with the given certificate and passes every request on to a plain
// HTTP backend: an endpoint signed by the test cluster's own CA, for TLS tests of clients.
func runTLSProxy(args []string) {
	fs := flag.NewFlagSet("tls-proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	cert := fs.String("cert", "", "PEM certificate (chain) to serve")
	key := fs.String("key", "", "its PEM private key")
	backend := fs.String("backend", "", "http://host:port to pass requests to")
	_ = fs.Parse(args)
	target, err := url.Parse(*backend)
	if err != nil || target.Host == "" {
		fmt.Fprintf(os.Stderr, "tls-proxy: --backend %q is not an http://host:port URL\n", *backend)
		os.Exit(2)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Keep the Host the client signed (S3 signatures cover it).
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		host := r.Host
		director(r)
		r.Host = host
	}
	fmt.Fprintf(os.Stderr, "tls-proxy: https://%s -> %s\n", *listen, target)
	if err := http.ListenAndServeTLS(*listen, *cert, *key, proxy); err != nil {
		fmt.Fprintf(os.Stderr, "tls-proxy: %v\n", err)
		os.Exit(1)
	}
}

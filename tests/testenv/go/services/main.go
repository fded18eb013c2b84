// Command services runs one of the test cluster's services, named by the first argument:
// etcd, coredns, fake-gcs-server or tls-proxy; the rest are that service's own flags.
package main

import (
	"fmt"
	"os"
)

func main() {
	commands := map[string]func(args []string){
		"etcd":            runEtcd,
		"coredns":         runCoreDNS,
		"fake-gcs-server": runFakeGCS,
		"tls-proxy":       runTLSProxy,
	}
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: services etcd|coredns|fake-gcs-server|tls-proxy [flags]")
		os.Exit(2)
	}
	commands[os.Args[1]](os.Args[2:])
}

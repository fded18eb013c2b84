package main

import (
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// runCoreDNS is CoreDNS with the plugins of a cluster's DNS and no others: in particular no
// `forward`, so names outside the cluster do not resolve, as on a cluster with no way out.
func runCoreDNS(args []string) {
	// The order CoreDNS's own plugin.cfg gives these plugins.
	dnsserver.Directives = []string{"bind", "ready", "errors", "log", "kubernetes"}
	os.Args = append([]string{"coredns"}, args...)
	coremain.Run()
}

package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

// runEtcd is etcd's own main: etcdmain reads os.Args, so the command's name is dropped first.
func runEtcd(args []string) {
	etcdmain.Main(append([]string{"etcd"}, args...))
	os.Exit(0)
}

// Command etcdcluster runs a command beside a throwaway etcd cluster: it
// starts three members on loopback (internal/etcdtest: free ports, data in
// a temporary directory), runs COMMAND with the cluster in its environment,
// stops the cluster, removes its data and exits with COMMAND's status.
// "make demo-etcd" runs the demo on it:
//
//	go run ./internal/cmd/etcdcluster sh -c 'bin/migrator status --store "$ETCD_STORE"'
//
// COMMAND sees ETCD_ENDPOINTS (host:port,...), ETCD_PREFIX (/demo) and
// ETCD_STORE (the migrator's etcd://ENDPOINTS/PREFIX). Like internal/etcdtest,
// it links the etcd server, so it is for demos and tests only, never a
// release (make cross leaves it out).
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hookreg/hookreg/internal/etcdtest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: etcdcluster COMMAND [ARG...]")
		os.Exit(2)
	}
	code, err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdcluster: %v\n", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(name string, args []string) (int, error) {
	c, err := etcdtest.Start(etcdtest.Config{Members: 3})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var hosts []string
	for _, ep := range c.Endpoints {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	const prefix = "/demo"
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"ETCD_ENDPOINTS="+strings.Join(hosts, ","),
		"ETCD_PREFIX="+prefix,
		"ETCD_STORE=etcd://"+strings.Join(hosts, ",")+prefix)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	// SIGINT and SIGTERM go to the command (a terminal's Ctrl-C reaches it
	// anyway); this process waits for it and then stops the cluster.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

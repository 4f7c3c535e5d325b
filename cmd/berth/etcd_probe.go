package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// errNoLocalEtcd is returned (wrapped) when every etcd endpoint is on this
// machine and refuses connections: nothing listens there.
var errNoLocalEtcd = errors.New("no etcd")

// probeLocal fails fast when every endpoint is a loopback address that
// refuses connections, instead of letting the client retry until its
// timeout: the usual cause is that "berth up" (or the tunnel) is not
// running. Remote endpoints, and local ones that accept or time out, are
// left to the client.
func probeLocal(endpoints []string) error {
	if len(endpoints) == 0 {
		return nil
	}
	var hosts []string
	for _, ep := range endpoints {
		hp := hostPort(ep)
		host, _, err := net.SplitHostPort(hp)
		if err != nil || !isLoopback(host) {
			return nil
		}
		c, err := net.DialTimeout("tcp", hp, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		hosts = append(hosts, hp)
	}
	return fmt.Errorf("is `berth up` running? (%w at %s: connection refused; for a cluster: bin/tunnel.sh or --etcd-endpoints)", errNoLocalEtcd, strings.Join(hosts, ","))
}

// hostPort returns the host:port of an etcd endpoint ("http://h:p", "h:p").
func hostPort(ep string) string {
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		return u.Host
	}
	return ep
}

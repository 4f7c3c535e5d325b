package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/pki"
)

// ProbeResult is the outcome of one etcd request of Probe.
type ProbeResult struct {
	Err    string `json:"err,omitempty"` // the request's or the connection's error; empty: it succeeded
	Denied bool   `json:"denied"`        // etcd answered: permission denied
	Count  int64  `json:"count"`         // keys read (get)
}

// probeMain is the etcd probe's entry point in the hub namespace: one
// request (a put or a prefix get) with etcd's Go client, the one berth
// uses, as the certificate given (none: TLS with the CA only; an http://
// endpoint: no TLS at all); its outcome as JSON on stdout.
func probeMain() {
	var res ProbeResult
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	cfg := clientv3.Config{Endpoints: []string{os.Getenv("BERTH_PROBE_ENDPOINT")}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()}
	if !strings.HasPrefix(cfg.Endpoints[0], "http://") {
		t, err := pki.ClientTLS(os.Getenv("BERTH_PROBE_CACERT"), os.Getenv("BERTH_PROBE_CERT"), os.Getenv("BERTH_PROBE_KEY"))
		if err != nil {
			res.Err = err.Error()
			return
		}
		cfg.TLS = t
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		res.Err = "connect: " + err.Error()
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	key := os.Getenv("BERTH_PROBE_KEY_NAME")
	if os.Getenv("BERTH_PROBE_OP") == "put" {
		_, err = cli.Put(ctx, key, "probe")
	} else {
		var r *clientv3.GetResponse
		if r, err = cli.Get(ctx, key, clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil {
			res.Count = r.Count
		}
	}
	if err != nil {
		res.Err = err.Error()
		res.Denied = errors.Is(err, rpctypes.ErrPermissionDenied)
	}
}

// Probe sends one etcd request from the hub to endpoint as user (its
// client certificate; "": none), op "put" (key=probe) or "get" (the
// prefix key, counted).
func (c *Cluster) Probe(endpoint, user, op, key string) ProbeResult {
	c.t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", Hub, self)
	cmd.Env = append(os.Environ(), "BERTH_ETCDPROBE=1", "BERTH_PROBE_ENDPOINT="+endpoint, "BERTH_PROBE_OP="+op, "BERTH_PROBE_KEY_NAME="+key,
		"BERTH_PROBE_CACERT="+filepath.Join(c.ca.Dir, pki.CACertFile))
	if user != "" {
		f := c.ca.Paths(user)
		cmd.Env = append(cmd.Env, "BERTH_PROBE_CERT="+f.Cert, "BERTH_PROBE_KEY="+f.Key)
	}
	out, err := cmd.Output()
	var res ProbeResult
	if err != nil || json.Unmarshal(out, &res) != nil {
		c.t.Fatalf("etcd probe %s %s as %q: %v\n%s", op, key, user, err, out)
	}
	return res
}

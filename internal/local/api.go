package local

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/console"
	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/registry"
)

// startAPI serves the HTTP API on cfg.API (nothing when it is empty):
// reads from loopback need no token, and an admin token named "berth-up"
// lives on a lease of the operator's, so it ends with this berth up. It
// returns the banner's lines.
func startAPI(ctx context.Context, goRun func(func(context.Context) error), cfg Config, ccs *clients, keys registry.Keys,
	cache *registry.Cache, reg *prometheus.Registry, log logrus.FieldLogger) ([]string, error) {
	if cfg.API == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return nil, fmt.Errorf("api: %w (choose another with --api ADDR, or --api '' to go without)", err)
	}
	owner := registry.NewLeaseOwner(ccs.operator, ccs.operator, 10*time.Second, log)
	goRun(owner.Run)
	select {
	case <-owner.Ready():
	case <-time.After(10 * time.Second):
		ln.Close()
		return nil, fmt.Errorf("api: no lease for the admin token from etcd within 10s")
	}
	token, key, value, _, err := api.MintToken(keys, api.TokenOptions{Name: "berth-up", Scope: api.ScopeAdmin, By: "berth up", Lease: owner.ID()})
	if err != nil {
		ln.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = owner.Put(pctx, key, value)
	cancel()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: store the admin token: %w", err)
	}
	srv, err := api.New(api.Config{Keys: keys, OpenLocalReads: true,
		Remover: control.RemoverFunc(func(context.Context, string, []string) ([]string, error) {
			return []string{"berth up stops the processes (it follows the spec)"}, nil
		})}, ccs.operator, ccs.operator, cache, reg, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	reg.MustRegister(srv.Collectors()...)
	con, err := console.FromAPI(srv, ccs.operator, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	reg.MustRegister(con.Collectors()...)
	goRun(srv.Run)
	goRun(con.Run)
	goRun(func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	addr := ln.Addr().String()
	return []string{
		fmt.Sprintf("api on http://%s/v1/   (reads from this machine need no token; docs/api.md)", addr),
		fmt.Sprintf("console on http://%s/   (actions take the admin token below; docs/console.md)", addr),
		fmt.Sprintf("  admin token (until berth up stops): %s", token),
		fmt.Sprintf("  curl -H 'Authorization: Bearer %s' -d '{\"instances\":5}' http://%s/v1/apps/APP/scale", token, addr),
	}, nil
}

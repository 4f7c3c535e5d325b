package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/deploy"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/leader"
)

// Deployers an agent can run (Config.Deployer).
var Deployers = []string{"berth", "systemd", "none"}

func (c Config) deployer() string {
	switch {
	case c.Deployer != "":
		return c.Deployer
	case c.Scheduler:
		return "berth"
	}
	return "none"
}

// CheckDeployer validates Config.Deployer.
func CheckDeployer(d string) error {
	for _, ok := range Deployers {
		if d == "" || d == ok {
			return nil
		}
	}
	return fmt.Errorf("--deployer must be berth, systemd or none, got %q", d)
}

// runDeployer campaigns for the cluster's deployer and carries deploys
// out while it leads, through berth fleet or this node's systemd.
func (a *Agent) runDeployer(ctx context.Context, cfg Config, kind string, log logrus.FieldLogger) error {
	var driver deploy.Driver
	switch kind {
	case "berth":
		driver = &deploy.Fleet{Store: &fleet.Store{KV: a.Cli, Keys: a.Keys}}
	case "systemd":
		for {
			conn, err := control.DialSystemd(ctx, cfg.DBusAddress)
			if err == nil {
				defer conn.Close()
				driver = &deploy.Systemd{Conn: conn}
				break
			}
			log.WithError(err).Warn("systemd bus unavailable; retrying in 5s")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
	default:
		return CheckDeployer(kind)
	}
	d := &deploy.Deployer{KV: a.Cli, Keys: a.Keys, Driver: driver, Log: log}
	return d.RunElected(ctx, leader.Config{Client: a.Cli, Prefix: a.Keys.DeployLeader(), ID: cfg.Node, Role: "deployer", Log: log}, a.Cache)
}

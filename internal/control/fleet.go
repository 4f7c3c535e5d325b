package control

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// Fleet starts and stops an app's instances with fleetctl, as Gogeta and
// Arken did: "fleetctl start app@1.service ... app@N.service". fleetctl
// reads FLEETCTL_ENDPOINT and FLEETCTL_TUNNEL from the environment.
type Fleet struct {
	Fleetctl string // binary (default "fleetctl")
	Endpoint string // --endpoint (fleet's etcd), if set
	Tunnel   string // --tunnel (ssh host), if set
}

func (f *Fleet) run(ctx context.Context, verb string, app *spec.App) error {
	bin := f.Fleetctl
	if bin == "" {
		bin = "fleetctl"
	}
	var args []string
	if f.Endpoint != "" {
		args = append(args, "--endpoint", f.Endpoint)
	}
	if f.Tunnel != "" {
		args = append(args, "--tunnel", f.Tunnel)
	}
	args = append(args, verb, "--no-block")
	for i := 1; i <= app.Instances; i++ {
		args = append(args, units.InstanceName(app.Name, fmt.Sprint(i)))
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fleetctl %s %s: %w: %s", verb, app.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Start implements Driver.
func (f *Fleet) Start(ctx context.Context, app *spec.App) error { return f.run(ctx, "start", app) }

// Stop implements Driver.
func (f *Fleet) Stop(ctx context.Context, app *spec.App) error { return f.run(ctx, "stop", app) }

var _ Driver = (*Fleet)(nil)

package control

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
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

// run runs fleetctl with its connection flags, then args.
func (f *Fleet) run(ctx context.Context, args ...string) error {
	bin := f.Fleetctl
	if bin == "" {
		bin = "fleetctl"
	}
	var argv []string
	if f.Endpoint != "" {
		argv = append(argv, "--endpoint", f.Endpoint)
	}
	if f.Tunnel != "" {
		argv = append(argv, "--tunnel", f.Tunnel)
	}
	argv = append(argv, args...)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fleetctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// instances runs verb on the app's instance units (1..Instances).
func (f *Fleet) instances(ctx context.Context, verb string, app *spec.App) error {
	args := []string{verb, "--no-block"}
	for i := 1; i <= app.Instances; i++ {
		args = append(args, units.InstanceName(app.Name, fmt.Sprint(i)))
	}
	return f.run(ctx, args...)
}

// Start implements Driver.
func (f *Fleet) Start(ctx context.Context, app *spec.App) error {
	return f.instances(ctx, "start", app)
}

// Stop implements Driver.
func (f *Fleet) Stop(ctx context.Context, app *spec.App) error { return f.instances(ctx, "stop", app) }

// Remove implements Remover: "fleetctl destroy" of the instance units
// and the template <app>@.service (fleet stops and unloads them first;
// fleetctl skips units it does not know).
func (f *Fleet) Remove(ctx context.Context, app string, instances []string) ([]string, error) {
	names := append(slices.Clone(instances), units.TemplateName(app))
	if err := f.run(ctx, append([]string{"destroy"}, names...)...); err != nil {
		return nil, err
	}
	return names, nil
}

var (
	_ Driver  = (*Fleet)(nil)
	_ Remover = (*Fleet)(nil)
)

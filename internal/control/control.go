// Package control starts and stops app instances behind one small
// interface, with three drivers: exec (local processes, for "berth up" and
// tests), systemd (units over D-Bus, used by the node agent) and fleet
// (fleetctl, for fleet clusters).
package control

import (
	"context"

	"github.com/berthproject/berth/internal/spec"
)

// Driver starts and stops all instances of an app. Both calls are
// idempotent: starting a running app or stopping a stopped one does
// nothing.
type Driver interface {
	Start(ctx context.Context, app *spec.App) error
	Stop(ctx context.Context, app *spec.App) error
}

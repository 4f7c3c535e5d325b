package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// StopUnits asks systemd to stop units (mode "replace"), all at once.
// With wait it returns when every stop job has finished, with an error
// naming the units whose job did not end "done" (berth delete); without,
// once the jobs are queued (the node agent's passivation, which looks
// again at its next pass).
func StopUnits(ctx context.Context, conn *sdbus.Conn, units []string, wait bool) error {
	type job struct {
		unit string
		done chan string
	}
	var jobs []job
	var errs []error
	for _, u := range units {
		var ch chan string
		if wait {
			ch = make(chan string, 1)
		}
		if _, err := conn.StopUnitContext(ctx, u, "replace", ch); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", u, err))
			continue
		}
		jobs = append(jobs, job{u, ch})
	}
	if wait {
		for _, j := range jobs {
			select {
			case res := <-j.done:
				if res != "done" {
					errs = append(errs, fmt.Errorf("stop %s: job %s", j.unit, res))
				}
			case <-ctx.Done():
				return fmt.Errorf("stop %s: %w", j.unit, ctx.Err())
			}
		}
	}
	return errors.Join(errs...)
}

// Systemd removes an app's units from one systemd over D-Bus: berth
// delete's systemd driver, for the node it runs on.
type Systemd struct {
	Conn *sdbus.Conn
}

// Remove implements Remover for this node: it stops every loaded
// <app>@*.service and <app>.<gen>@*.service (waiting for the stops),
// clears their failed state, disables their unit files, which also removes
// the links "systemctl link" made (persistent and runtime), and reloads
// systemd. A unit file that is no link (copied into /etc/systemd/system)
// cannot be removed over D-Bus: it is reported as kept. instances is not
// needed: the units are found by name.
func (s *Systemd) Remove(ctx context.Context, app string, _ []string) ([]string, error) {
	// Its first release's units and the later ones' (<app>.<gen>@).
	pattern := []string{app + "@*.service", app + ".[0-9]*@*.service"}
	loaded, err := s.Conn.ListUnitsByPatternsContext(ctx, nil, pattern)
	if err != nil {
		return nil, fmt.Errorf("list units %s: %w", pattern, err)
	}
	var out, running []string
	for _, u := range loaded {
		switch u.ActiveState {
		case "active", "activating", "reloading", "deactivating":
			running = append(running, u.Name)
		}
	}
	slices.Sort(running)
	if err := StopUnits(ctx, s.Conn, running, true); err != nil {
		return nil, err
	}
	for _, u := range running {
		out = append(out, "stopped "+u)
	}
	for _, u := range loaded {
		s.Conn.ResetFailedUnitContext(ctx, u.Name) // not failed: nothing to do
	}
	// Persistent links first (/etc), then runtime ones (/run), each time
	// what is still there: disabling a file that is gone is an error.
	list := func() ([]sdbus.UnitFile, error) {
		files, err := s.Conn.ListUnitFilesByPatternsContext(ctx, nil, pattern)
		if err != nil {
			return nil, fmt.Errorf("list unit files %s: %w", pattern, err)
		}
		return files, nil
	}
	for _, runtime := range []bool{false, true} {
		files, err := list()
		if err != nil || len(files) == 0 {
			return out, err
		}
		var names []string
		for _, f := range files {
			names = append(names, filepath.Base(f.Path))
		}
		changes, err := s.Conn.DisableUnitFilesContext(ctx, names, runtime)
		if err != nil {
			return out, fmt.Errorf("disable %v: %w", names, err)
		}
		for _, c := range changes {
			out = append(out, c.Type+" "+c.Filename)
		}
		if err := s.Conn.ReloadContext(ctx); err != nil {
			return out, fmt.Errorf("daemon-reload: %w", err)
		}
	}
	left, err := list()
	if err != nil {
		return out, err
	}
	for _, f := range left {
		out = append(out, "kept "+f.Path+" (not a link: remove it and run systemctl daemon-reload)")
	}
	return out, nil
}

var _ Remover = (*Systemd)(nil)

// DialSystemd connects to a systemd over its system bus. An empty address
// is the machine's own system bus; "unix:path=/run/dbus/system_bus_socket"
// style addresses reach another one (a container's, in the tests).
func DialSystemd(ctx context.Context, address string) (*sdbus.Conn, error) {
	if address == "" {
		return sdbus.NewSystemConnectionContext(ctx)
	}
	return sdbus.NewConnection(func() (*godbus.Conn, error) {
		conn, err := godbus.Dial(address)
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	})
}

package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// Systemd carries deploys out on one node's systemd, for a node that runs
// its apps without berth fleet (berth agent --deployer systemd): a
// release's template is written to Dir and linked into systemd, its
// instances are enabled (they start at boot) and started over D-Bus, and
// stopped and disabled when replaced.
type Systemd struct {
	Conn  *sdbus.Conn
	Units units.Options // how the templates are rendered
	// Dir is where templates are written (default /etc/berth/units);
	// SystemdDir is the same directory as systemd sees it (default Dir:
	// they differ only when systemd runs in a container).
	Dir, SystemdDir string
}

func (s *Systemd) dirs() (string, string) {
	dir := s.Dir
	if dir == "" {
		dir = "/etc/berth/units"
	}
	sdir := s.SystemdDir
	if sdir == "" {
		sdir = dir
	}
	return dir, sdir
}

// StartInstance implements Driver. A template systemd knows already (the
// first release, linked by hand) is used as it is.
func (s *Systemd) StartInstance(ctx context.Context, app *spec.App, n string) error {
	files, err := units.Render(app, s.Units)
	if err != nil {
		return err
	}
	tmpl := files[0]
	known, err := s.Conn.ListUnitFilesByPatternsContext(ctx, nil, []string{tmpl.Name})
	if err != nil {
		return fmt.Errorf("list unit files: %w", err)
	}
	dir, sdir := s.dirs()
	path := filepath.Join(dir, tmpl.Name)
	have, _ := os.ReadFile(path)
	if len(known) == 0 || len(have) > 0 && !bytes.Equal(have, tmpl.Content) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, tmpl.Content, 0o644); err != nil {
			return err
		}
		if len(known) == 0 {
			if _, err := s.Conn.LinkUnitFilesContext(ctx, []string{filepath.Join(sdir, tmpl.Name)}, false, true); err != nil {
				return fmt.Errorf("link %s: %w", tmpl.Name, err)
			}
		}
		if err := s.Conn.ReloadContext(ctx); err != nil {
			return fmt.Errorf("daemon-reload: %w", err)
		}
	}
	unit := units.InstanceName(units.Prefix(app), n)
	if _, _, err := s.Conn.EnableUnitFilesContext(ctx, []string{unit}, false, true); err != nil {
		return fmt.Errorf("enable %s: %w", unit, err)
	}
	if _, err := s.Conn.StartUnitContext(ctx, unit, "replace", nil); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	return nil
}

// StopInstance implements Driver: the unit stops (its drain and
// post-stop hooks take it out of the routes) and is disabled.
func (s *Systemd) StopInstance(ctx context.Context, app, id string) error {
	unit := units.UnitOfID(app, id)
	if err := control.StopUnits(ctx, s.Conn, []string{unit}, true); err != nil {
		return err
	}
	s.Conn.ResetFailedUnitContext(ctx, unit) // not failed: nothing to do
	if _, err := s.Conn.DisableUnitFilesContext(ctx, []string{unit}, false); err != nil {
		return fmt.Errorf("disable %s: %w", unit, err)
	}
	return nil
}

var _ Driver = (*Systemd)(nil)

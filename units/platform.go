package units

import (
	"fmt"
	"slices"
	"strings"
)

// PassivateDrivers are the drivers berth-passivate.service can run with.
var PassivateDrivers = []string{"systemd", "fleet", "berth"}

// PlatformUnits are the platform's own units, in the order they are written.
var PlatformUnits = []string{
	"berth-router.socket", "berth-router-https.socket", "berth-router.service",
	"berth-dnsd.socket", "berth-dnsd.service",
	"berth-agent.service",
	"berth-passivate.service", "berth-passivate.timer",
}

// Platform renders the platform's own units. Their configuration comes from
// /etc/berth/berth.env (BERTH_* variables, see docs/units.md), so the same
// files serve every node.
func Platform(o Options) ([]File, error) {
	o = o.withDefaults()
	if !slices.Contains(PassivateDrivers, o.PassivateDriver) {
		return nil, fmt.Errorf("passivate driver must be one of %s, got %q", strings.Join(PassivateDrivers, ", "), o.PassivateDriver)
	}
	var files []File
	for _, name := range PlatformUnits {
		u, err := loadTemplate(name)
		if err != nil {
			return nil, err
		}
		for _, opt := range u.opts {
			if opt.Section == "Service" && opt.Name == "ExecStart" {
				path, err := ExecArg(o.Berth)
				if err != nil {
					return nil, err
				}
				opt.Value = path + strings.TrimPrefix(opt.Value, "/opt/bin/berth")
				if name == "berth-passivate.service" {
					opt.Value += " --driver " + o.PassivateDriver
				}
			}
		}
		f, err := u.file(name)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

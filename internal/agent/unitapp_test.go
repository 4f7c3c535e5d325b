package agent

import "testing"

// TestUnitApp: the agent maps instance units to apps, a later release's
// units ("<app>.<gen>@<n>.service") included.
func TestUnitApp(t *testing.T) {
	for _, tc := range []struct {
		unit, app string
		ok        bool
	}{
		{"web@1.service", "web", true},
		{"web.3@1.service", "web", true},
		{"web@.service", "web", false},
		{"web.x@1.service", "", false},
		{"web.1@1.service", "", false}, // generation 1 has no suffix
		{"web@1.socket", "web", false},
	} {
		app, ok := unitApp(tc.unit)
		if ok != tc.ok || ok && app != tc.app {
			t.Errorf("unitApp(%s) = %q %v, want %q %v", tc.unit, app, ok, tc.app, tc.ok)
		}
	}
}

// TestDeployerDefault: scheduler agents carry deploys out through berth
// fleet unless told otherwise; other agents run none.
func TestDeployerDefault(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "none"},
		{Config{Scheduler: true}, "berth"},
		{Config{Scheduler: true, Deployer: "none"}, "none"},
		{Config{Deployer: "systemd"}, "systemd"},
	} {
		if got := tc.cfg.deployer(); got != tc.want {
			t.Errorf("%+v: deployer %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

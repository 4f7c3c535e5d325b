package spec

import (
	"fmt"
	"time"
)

// Default values applied by SetDefaults.
const (
	DefaultVersion      = "0.0.0"
	DefaultInstances    = 1
	DefaultStopTimeout  = 10 * time.Second
	DefaultStartTimeout = 5 * time.Minute
	DefaultRestartDelay = 5 * time.Second
	DefaultRestartBurst = 5
	DefaultRestartEvery = 10 * time.Minute
	DefaultHealthEvery  = 5 * time.Second
	DefaultHealthWait   = 2 * time.Second
	DefaultStartPeriod  = 60 * time.Second
)

// SetDefaults fills every optional field left at its zero value with the
// default documented on the field. It is idempotent.
func (a *App) SetDefaults() {
	if a.Version == "" {
		a.Version = DefaultVersion
	}
	if a.Runtime == "" {
		a.Runtime = RuntimeDocker
	}
	if a.Pull == "" && a.Runtime != RuntimeExec {
		a.Pull = PullMissing
	}
	if a.Instances == 0 {
		a.Instances = DefaultInstances
	}
	for i := range a.Ports {
		p := &a.Ports[i]
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.Name == "" {
			if i == 0 {
				p.Name = a.Name
			} else {
				p.Name = fmt.Sprintf("%s-%d", a.Name, p.Container)
			}
		}
	}
	if a.Health == nil && len(a.Ports) > 0 && a.Ports[0].Protocol == "tcp" {
		a.Health = &Health{TCP: true}
	}
	if h := a.Health; h != nil {
		setDuration(&h.Interval, DefaultHealthEvery)
		setDuration(&h.Timeout, min(DefaultHealthWait, h.Interval.D()))
		setDuration(&h.StartPeriod, DefaultStartPeriod)
	}
	if a.Restart.Policy == "" {
		a.Restart.Policy = RestartAlways
	}
	setDuration(&a.Restart.Delay, DefaultRestartDelay)
	if a.Restart.Burst == 0 {
		a.Restart.Burst = DefaultRestartBurst
	}
	setDuration(&a.Restart.Interval, DefaultRestartEvery)
	setDuration(&a.StopTimeout, DefaultStopTimeout)
	setDuration(&a.StartTimeout, DefaultStartTimeout)
	if a.Routing.Policy == "" {
		a.Routing.Policy = PolicyRoundRobin
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

package spec

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-semver/semver"
)

var (
	reName     = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	rePortName = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reTag      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	reEnvKey   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reImage    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$`)
	reMemory   = regexp.MustCompile(`^[1-9][0-9]*[KMGT]?$`)
	reUser     = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]+(:[0-9]+)?)$`)
	reLabel    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	reMetadata = regexp.MustCompile(`^[A-Za-z0-9_-]+=[^\s"]+$`)
	reUnit     = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer)$`)
	reHostname = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reWindow   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// MaxInstances bounds Instances: a typo should not start a million units.
const MaxInstances = 1000

// Validate checks a defaulted spec and returns every problem at once as
// Errors, each naming its field path; nil if the spec is valid.
func (a *App) Validate() error {
	var es Errors
	if a.APIVersion != APIVersion {
		es.add("apiVersion", "must be %q", APIVersion)
	}
	if !reName.MatchString(a.Name) {
		es.add("name", "%q is not a valid app name: use 1-63 lowercase letters, digits and '-', starting with a letter (it names units, containers and DNS labels)", a.Name)
	}
	if _, err := semver.NewVersion(a.Version); err != nil {
		es.add("version", "%q is not a semantic version: write it like 1.2.0", a.Version)
	}
	a.validateRuntime(&es)
	if a.Instances < 1 || a.Instances > MaxInstances {
		es.add("instances", "must be 1..%d, got %d", MaxInstances, a.Instances)
	}
	a.validatePorts(&es)
	a.validateSecrets(&es)
	for _, k := range sortedKeys(a.Env) {
		if !reEnvKey.MatchString(k) {
			es.add("env", "%q is not a valid variable name: use letters, digits and '_', not starting with a digit", k)
		}
		checkText(&es, joinPath("env", k), a.Env[k])
	}
	for i, v := range a.Volumes {
		p := indexPath("volumes", i)
		for _, f := range []struct{ field, s string }{{"source", v.Source}, {"target", v.Target}} {
			field, s := f.field, f.s
			if !path.IsAbs(s) || strings.ContainsAny(s, ":,") {
				es.add(joinPath(p, field), "%q must be an absolute path without ':' or ','", s)
			}
			checkText(&es, joinPath(p, field), s)
		}
	}
	a.validateDomains(&es)
	a.validateHealth(&es)
	for i, w := range a.KeepWarm {
		if !reWindow.MatchString(string(w)) {
			es.add(indexPath("keepWarm", i), "%q must be a daily UTC window like 08:00-18:00", w)
		}
	}
	a.validateRestart(&es)
	if a.StopTimeout.D() < time.Second {
		es.add("stopTimeout", "must be at least 1s, got %s", a.StopTimeout)
	}
	if a.StartTimeout.D() < time.Second {
		es.add("startTimeout", "must be at least 1s, got %s", a.StartTimeout)
	}
	if m := a.Resources.Memory; m != "" && !reMemory.MatchString(m) {
		es.add("resources.memory", "%q must be a size like 512M or 2G (suffix K, M, G or T)", m)
	}
	if c := a.Resources.CPUs; c < 0 || c > 1024 {
		es.add("resources.cpus", "must be between 0 and 1024 cores, got %g", c)
	}
	if a.User != "" && !reUser.MatchString(a.User) {
		es.add("user", "%q must be a user name or uid[:gid]", a.User)
	}
	for _, k := range sortedKeys(a.Labels) {
		if !reLabel.MatchString(k) {
			es.add("labels", "%q is not a valid label key: use letters, digits and . _ / -", k)
		}
		checkText(&es, joinPath("labels", k), a.Labels[k])
	}
	a.validatePlacement(&es)
	a.validateRouting(&es)
	return es.err()
}

func (a *App) validateRuntime(es *Errors) {
	switch a.Runtime {
	case RuntimeDocker, RuntimePodman:
		if a.Image == "" {
			es.add("image", "missing: set the container image, e.g. image: nginx:1.27")
		} else if !reImage.MatchString(a.Image) {
			es.add("image", "%q is not a valid image reference", a.Image)
		}
		switch a.Pull {
		case PullAlways, PullMissing, PullNever:
		default:
			es.add("pull", "must be always, missing or never, got %q", a.Pull)
		}
	case RuntimeExec:
		if a.Image != "" {
			es.add("image", "must be empty with runtime exec (the command is run directly)")
		}
		if a.Pull != "" {
			es.add("pull", "must be empty with runtime exec")
		}
		if len(a.Command) == 0 || !path.IsAbs(a.Command[0]) {
			es.add("command", "runtime exec needs command: [/absolute/path/to/binary, args...]")
		}
		if len(a.Volumes) > 0 {
			es.add("volumes", "are for container runtimes; runtime exec sees the host's files")
		}
		if len(a.Labels) > 0 {
			es.add("labels", "are for container runtimes")
		}
	default:
		es.add("runtime", "must be docker, podman or exec, got %q", a.Runtime)
	}
	for i, s := range a.Command {
		checkText(es, indexPath("command", i), s)
	}
	for i, s := range a.Args {
		checkText(es, indexPath("args", i), s)
	}
}

func (a *App) validatePorts(es *Errors) {
	seenPort := map[string]int{}
	seenHost := map[string]int{}
	seenName := map[string]int{}
	for i, p := range a.Ports {
		at := indexPath("ports", i)
		if p.Container < 1 || p.Container > 65535 {
			es.add(joinPath(at, "container"), "must be 1..65535, got %d", p.Container)
		}
		if p.Host < 0 || p.Host > 65535 {
			es.add(joinPath(at, "host"), "must be 0 (random) or 1..65535, got %d", p.Host)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			es.add(joinPath(at, "protocol"), "must be tcp or udp, got %q", p.Protocol)
		}
		if !rePortName.MatchString(p.Name) {
			es.add(joinPath(at, "name"), "%q is not a valid port name: lowercase letters, digits and '-'", p.Name)
		}
		key := fmt.Sprintf("%d/%s", p.Container, p.Protocol)
		if j, ok := seenPort[key]; ok {
			es.add(at, "duplicates ports[%d] (%s): each container port and protocol once", j, key)
		}
		seenPort[key] = i
		if p.Host != 0 {
			hk := fmt.Sprintf("%d/%s", p.Host, p.Protocol)
			if j, ok := seenHost[hk]; ok {
				es.add(joinPath(at, "host"), "duplicates the host port of ports[%d] (%s)", j, hk)
			}
			seenHost[hk] = i
		}
		if j, ok := seenName[p.Name]; ok {
			es.add(joinPath(at, "name"), "%q is already the name of ports[%d]", p.Name, j)
		}
		seenName[p.Name] = i
		for k, tag := range p.Tags {
			if !reTag.MatchString(tag) {
				es.add(indexPath(joinPath(at, "tags"), k), "%q is not a valid tag: letters, digits and . _ -", tag)
			}
		}
	}
}

func (a *App) validateDomains(es *Errors) {
	seen := map[string]int{}
	for i, d := range a.Domains {
		at := indexPath("domains", i)
		if len(d) > 253 || !reHostname.MatchString(d) {
			es.add(at, "%q is not a lowercase host name or *.wildcard (no scheme, port or path)", d)
		}
		if j, ok := seen[d]; ok {
			es.add(at, "%q duplicates domains[%d]", d, j)
		}
		seen[d] = i
	}
}

func (a *App) validateHealth(es *Errors) {
	h := a.Health
	if h == nil {
		return
	}
	set := 0
	if h.HTTP != "" {
		set++
		if !strings.HasPrefix(h.HTTP, "/") || strings.ContainsAny(h.HTTP, " \t\r\n") {
			es.add("health.http", "%q must be a path starting with '/'", h.HTTP)
		}
	}
	if h.TCP {
		set++
	}
	if len(h.Command) > 0 {
		set++
		for i, s := range h.Command {
			checkText(es, indexPath("health.command", i), s)
		}
	}
	if set != 1 {
		es.add("health", "set exactly one of http, tcp and command")
	}
	if (h.HTTP != "" || h.TCP) && (len(a.Ports) == 0 || a.Ports[0].Protocol != "tcp") {
		es.add("health", "http and tcp checks probe the first port, which must exist and be tcp")
	}
	if h.Timeout > h.Interval {
		es.add("health.timeout", "%s must not exceed health.interval (%s)", h.Timeout, h.Interval)
	}
	if h.Interval.D() < 100*time.Millisecond {
		es.add("health.interval", "must be at least 100ms, got %s", h.Interval)
	}
}

func (a *App) validateRestart(es *Errors) {
	r := a.Restart
	switch r.Policy {
	case RestartAlways, RestartOnFailure, RestartNo:
	default:
		es.add("restart.policy", "must be always, on-failure or no, got %q", r.Policy)
	}
	if r.Burst < 1 {
		es.add("restart.burst", "must be at least 1, got %d", r.Burst)
	}
	// systemd counts starts within the interval; restarts spaced by Delay
	// can only reach Burst if Burst × Delay fits in the interval.
	if r.Burst >= 1 && time.Duration(r.Burst)*r.Delay.D() >= r.Interval.D() {
		es.add("restart.interval", "%s is too short for %d restarts %s apart: the limit could never trigger; make it longer than %s",
			r.Interval, r.Burst, r.Delay, time.Duration(r.Burst)*r.Delay.D())
	}
}

func (a *App) validatePlacement(es *Errors) {
	p := a.Placement
	for i, m := range p.MachineMetadata {
		if !reMetadata.MatchString(m) {
			es.add(indexPath("placement.machineMetadata", i), "%q must be key=value", m)
		}
	}
	if p.MachineOf != "" && !reUnit.MatchString(p.MachineOf) {
		es.add("placement.machineOf", "%q must be a unit name like db@1.service", p.MachineOf)
	}
	if p.Global && p.MachineOf != "" {
		es.add("placement", "global and machineOf cannot be combined")
	}
	if p.Global && a.Instances > 1 {
		es.add("instances", "a global app runs one instance per machine: leave instances at 1")
	}
}

func (a *App) validateRouting(es *Errors) {
	switch a.Routing.Policy {
	case PolicyRoundRobin, PolicyLeastConn, PolicyP2C:
	default:
		es.add("routing.policy", "must be round_robin, least_conn or p2c, got %q", a.Routing.Policy)
	}
	switch a.Routing.Protocol {
	case "", "http", "h2c":
	default:
		es.add("routing.protocol", "must be http or h2c, got %q", a.Routing.Protocol)
	}
	switch a.Routing.HTTPS {
	case "", HTTPSBoth, HTTPSRedirect, HTTPSOnly:
		if a.Routing.HTTPSRedirect && a.Routing.HTTPS != "" && a.Routing.HTTPS != HTTPSRedirect {
			es.add("routing.httpsRedirect", "contradicts routing.https %q: drop httpsRedirect (https: redirect says the same)", a.Routing.HTTPS)
		}
	default:
		es.add("routing.https", "must be both, redirect or only, got %q", a.Routing.HTTPS)
	}
	if a.Routing.MaxConns < 0 {
		es.add("routing.maxConns", "must be 0 (unlimited) or more, got %d", a.Routing.MaxConns)
	}
	if a.Routing.ActiveHealth && (a.Health == nil || a.Health.HTTP == "") {
		es.add("routing.activeHealth", "needs an HTTP check for the routers to probe: set health.http (e.g. /healthz)")
	}
}

// checkText refuses values that no systemd unit can pass to a process: NUL,
// newlines and invalid UTF-8. Everything else is escaped exactly by units/.
func checkText(es *Errors, at, s string) {
	switch {
	case !utf8.ValidString(s):
		es.add(at, "is not valid UTF-8")
	case strings.ContainsRune(s, 0):
		es.add(at, "contains a NUL byte, which a unit file cannot express")
	case strings.ContainsAny(s, "\n\r"):
		es.add(at, "contains a line break, which a unit file cannot pass through: put multi-line values in a file and pass its path")
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

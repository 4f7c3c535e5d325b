package units

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Options are the machine paths the rendered units use. The zero value
// gives Flatcar's layout.
type Options struct {
	// Berth is the berth binary (default /opt/bin/berth).
	Berth string
	// Docker is the docker CLI (default /usr/bin/docker).
	Docker string
	// Podman is the podman CLI (default /usr/bin/podman).
	Podman string
	// RunDir holds per-instance state such as allocated ports (default /run/berth).
	RunDir string
	// PassivateDriver is how berth-passivate.service stops idle apps:
	// "systemd" (the default: node agents carry out the expected state),
	// "fleet" (fleetctl stop, for units fleet schedules) or "berth" (units
	// berth fleet places: their executors hold a passivated app's units
	// stopped wherever they are placed).
	PassivateDriver string
}

func (o Options) withDefaults() Options {
	if o.Berth == "" {
		o.Berth = "/opt/bin/berth"
	}
	if o.Docker == "" {
		o.Docker = "/usr/bin/docker"
	}
	if o.Podman == "" {
		o.Podman = "/usr/bin/podman"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/berth"
	}
	if o.PassivateDriver == "" {
		o.PassivateDriver = "systemd"
	}
	return o
}

// TemplateName is the name of an app's template unit: "<app>@.service".
func TemplateName(app string) string { return app + "@.service" }

// Prefix is the unit name prefix of an app's release: "<app>" for its
// first generation, "<app>.<gen>" after, so that two releases' units run
// side by side (a deploy) under systemd and under fleet. App names have no
// dot, so the prefix names one app and one generation.
func Prefix(app *spec.App) string {
	if app.Gen() <= 1 {
		return app.Name
	}
	return app.Name + "." + strconv.FormatInt(app.Gen(), 10)
}

// AppOfPrefix returns the app and generation of a unit name prefix.
func AppOfPrefix(prefix string) (app string, gen int64) {
	name, g, ok := strings.Cut(prefix, ".")
	if !ok {
		return prefix, 1
	}
	gen, err := strconv.ParseInt(g, 10, 64)
	if err != nil || gen < 2 {
		return prefix, 0 // not a berth release's prefix
	}
	return name, gen
}

// InstanceName is the unit name of one instance: "<app>@<instance>.service".
func InstanceName(app, instance string) string { return app + "@" + instance + ".service" }

// UnitOfID is the unit name of the instance with registry id id: instance
// n of generation g ("<g>.<n>") runs as "<app>.<g>@<n>.service".
func UnitOfID(app, id string) string {
	gen, n := registry.SplitInstanceID(id)
	if gen <= 1 {
		return InstanceName(app, n)
	}
	return InstanceName(app+"."+strconv.FormatInt(gen, 10), n)
}

// Render renders the template unit of a validated app spec.
func Render(app *spec.App, o Options) ([]File, error) {
	o = o.withDefaults()
	u, err := loadTemplate("app.service")
	if err != nil {
		return nil, err
	}
	r := &appRenderer{app: app, o: o, u: u}
	if err := r.render(); err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	f, err := u.file(TemplateName(Prefix(app)))
	if err != nil {
		return nil, err
	}
	return []File{f}, nil
}

type appRenderer struct {
	app *spec.App
	o   Options
	u   *unitFile
	err error
}

// exec adds an Exec line, keeping the first error.
func (r *appRenderer) exec(name, prefix string, argv ...Arg) {
	line, err := ExecLine(prefix, argv...)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("%s: %w", name, err)
		}
		return
	}
	r.u.add("Service", name, line)
}

func (r *appRenderer) env(key, value string) {
	v, err := EnvAssignment(key, value)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("env: %w", err)
		}
		return
	}
	r.u.add("Service", "Environment", v)
}

func (r *appRenderer) render() error {
	a := r.app
	name, err := Value(a.Name + " (berth app, version " + a.Version + ")")
	if err != nil {
		return err
	}
	r.u.add("Unit", "Description", name+" instance %i")
	r.u.add("Unit", "StartLimitIntervalSec", seconds(a.Restart.Interval.D()))
	r.u.add("Unit", "StartLimitBurst", strconv.Itoa(a.Restart.Burst))

	r.env("BERTH_APP", a.Name)
	r.env("BERTH_VERSION", a.Version)
	r.u.add("Service", "Environment", "BERTH_INSTANCE="+r.id())
	switch a.Runtime {
	case spec.RuntimeExec:
		r.renderExec()
	default:
		r.renderContainer()
	}
	r.u.add("Service", "Restart", a.Restart.Policy)
	r.u.add("Service", "RestartSec", seconds(a.Restart.Delay.D()))
	r.u.add("Service", "TimeoutStartSec", seconds(a.StartTimeout.D()))
	r.renderPlacement()
	return r.err
}

// hook returns the argv of "berth hook <phase>" for this app.
func (r *appRenderer) hook(phase string, extra ...Arg) []Arg {
	argv := []Arg{Lit(r.o.Berth), Lit("hook"), Lit(phase), Lit("--app"), Lit(r.app.Name), Lit("--instance"), Raw(r.id())}
	return append(argv, extra...)
}

// postStartArgs tell the post-start hook how to find and check the instance.
func (r *appRenderer) postStartArgs() []Arg {
	a := r.app
	args := Lits("--runtime", a.Runtime, "--version", a.Version)
	if len(a.Ports) > 0 {
		p := a.Ports[0]
		args = append(args, Lits("--port", fmt.Sprintf("%d/%s", p.Container, p.Protocol), "--port-name", p.Name)...)
		if p.Host != 0 {
			args = append(args, Lits("--host-port", strconv.Itoa(p.Host))...)
		}
		if len(p.Tags) > 0 {
			args = append(args, Lits("--tags", strings.Join(p.Tags, ","))...)
		}
	}
	for _, p := range a.Ports[min(1, len(a.Ports)):] {
		args = append(args, Lits("--named-port", NamedPortArg(p))...)
	}
	if a.Runtime == spec.RuntimeExec {
		args = append(args, Lit("--env-file"), Raw(r.envFile()))
	}
	if h := a.Health; h != nil {
		switch {
		case h.HTTP != "":
			args = append(args, Lits("--health", "http:"+h.HTTP)...)
		case h.TCP:
			args = append(args, Lits("--health", "tcp")...)
		}
		args = append(args, Lits("--health-timeout", h.StartPeriod.String(), "--health-interval", h.Interval.String())...)
	}
	return args
}

// NamedPortArg is the post-start hook's --named-port value for a port
// after the first: "name=metrics,port=9090/tcp[,host=9191][,tag=T]...".
func NamedPortArg(p spec.Port) string {
	s := fmt.Sprintf("name=%s,port=%d/%s", p.Name, p.Container, p.Protocol)
	if p.Host != 0 {
		s += ",host=" + strconv.Itoa(p.Host)
	}
	for _, t := range p.Tags {
		s += ",tag=" + t
	}
	return s
}

// Files in an instance's secrets directory (as internal/hook writes them).
const (
	SecretsEnvFile  = "env"
	SecretsAuthFile = "config.json"
)

// SecretsDir is the directory on tmpfs where the pre-start hook writes an
// instance's secrets (env file, registry auth file) and post-stop removes
// them: <RunDir>/secrets/%p@%i, one per unit.
func (o Options) SecretsDir() string { return o.withDefaults().RunDir + "/secrets/%p@%i" }

func (r *appRenderer) secretsDir() string { return r.o.SecretsDir() }

// secretsPrefix runs the hooks that handle secrets with full privileges
// ('+'): they read the node's key (root's) even when the unit has a User=.
func (r *appRenderer) secretsPrefix() string {
	if r.app.UsesSecrets() {
		return "+"
	}
	return ""
}

// secretArgs tell the pre-start hook which secrets to write; names only.
func (r *appRenderer) secretArgs() []Arg {
	a := r.app
	if !a.UsesSecrets() {
		return nil
	}
	args := r.secretsDirArg()
	senv := a.SecretEnv()
	for _, k := range sortedKeys(senv) {
		args = append(args, Lit("--secret"), Lit(k+"="+senv[k]))
	}
	if a.PullSecret != "" {
		args = append(args, Lit("--pull-secret"), Lit(a.PullSecret), Lit("--image"), Lit(a.Image))
	}
	return args
}

func (r *appRenderer) secretsDirArg() []Arg {
	if !r.app.UsesSecrets() {
		return nil
	}
	return []Arg{Lit("--secrets-dir"), Raw(r.secretsDir())}
}

func (r *appRenderer) envFile() string {
	return r.o.RunDir + "/" + r.app.Name + "/" + r.id() + ".env"
}

// id is the instance's registry id as systemd expands it: "%i" for the
// first generation, "<gen>.%i" after (registry.InstanceID).
func (r *appRenderer) id() string {
	if r.app.Gen() <= 1 {
		return "%i"
	}
	return strconv.FormatInt(r.app.Gen(), 10) + ".%i"
}

// containerName is the seed's "%p-%i" convention.
const containerName = "%p-%i"

func (r *appRenderer) renderContainer() {
	a := r.app
	cli := r.o.Docker
	if a.Runtime == spec.RuntimePodman {
		cli = r.o.Podman
	}
	stop := int(math.Ceil(a.StopTimeout.D().Seconds()))

	r.exec("ExecStartPre", "-", Lit(cli), Lit("rm"), Lit("-f"), Raw(containerName))
	// With a pullSecret the pre-start hook comes before the pull: it
	// writes the pull's credentials to the instance's secrets directory.
	preStart := func() { r.exec("ExecStartPre", r.secretsPrefix(), r.hook("pre-start", r.secretArgs()...)...) }
	if a.PullSecret != "" {
		preStart()
	}
	pull := []Arg{Lit(cli), Lit("pull"), Lit(a.Image)}
	if a.PullSecret != "" {
		auth := Raw(r.secretsDir() + "/" + SecretsAuthFile)
		if a.Runtime == spec.RuntimePodman {
			pull = []Arg{Lit(cli), Lit("pull"), Lit("--authfile"), auth, Lit(a.Image)}
		} else {
			pull = []Arg{Lit(cli), Lit("--config"), Raw(r.secretsDir()), Lit("pull"), Lit(a.Image)}
		}
	}
	switch a.Pull {
	case spec.PullAlways:
		r.exec("ExecStartPre", "", pull...)
	case spec.PullMissing:
		r.exec("ExecStartPre", "-", pull...)
	}
	if a.PullSecret == "" {
		preStart()
	}
	podmanSecrets := a.Runtime == spec.RuntimePodman && len(a.SecretEnv()) > 0
	if podmanSecrets {
		r.podmanSecretsCreate(cli)
	}

	argv := []Arg{Lit(cli), Lit("run"), Lit("--rm"), Lit("--name"), Raw(containerName),
		Lit("--init"), Lit("--log-driver=journald"), Lit("--stop-timeout"), Lit(strconv.Itoa(stop)),
		Lit("--label"), Lit("berth.app=" + a.Name), Lit("--label"), Raw("berth.instance=" + r.id()),
		Lit("--label"), Lit("berth.version=" + a.Version)}
	for _, kv := range containerEnv(a) {
		argv = append(argv, Lit("-e"), Lit(kv))
	}
	switch {
	case podmanSecrets:
		for _, k := range sortedKeys(a.SecretEnv()) {
			argv = append(argv, Lit("--secret"), Raw(podmanSecretName(k)+",type=env,target="+k))
		}
	case len(a.SecretEnv()) > 0:
		argv = append(argv, Lit("--env-file"), Raw(r.secretsDir()+"/"+SecretsEnvFile))
	}
	for _, p := range a.Ports {
		pub := fmt.Sprintf("%d/%s", p.Container, p.Protocol)
		if p.Host != 0 {
			pub = fmt.Sprintf("%d:%s", p.Host, pub)
		}
		argv = append(argv, Lit("-p"), Lit(pub))
	}
	for _, v := range a.Volumes {
		m := v.Source + ":" + v.Target
		if v.ReadOnly {
			m += ":ro"
		}
		argv = append(argv, Lit("-v"), Lit(m))
	}
	if a.Resources.Memory != "" {
		argv = append(argv, Lit("--memory"), Lit(strings.ToLower(a.Resources.Memory)))
	}
	if a.Resources.CPUs > 0 {
		argv = append(argv, Lit("--cpus"), Lit(strconv.FormatFloat(a.Resources.CPUs, 'f', -1, 64)))
	}
	if a.User != "" {
		argv = append(argv, Lit("--user"), Lit(a.User))
	}
	for _, k := range sortedKeys(a.Labels) {
		argv = append(argv, Lit("--label"), Lit(k+"="+a.Labels[k]))
	}
	cmd := a.Command
	if len(cmd) > 0 {
		argv = append(argv, Lit("--entrypoint"), Lit(cmd[0]))
		cmd = cmd[1:]
	}
	argv = append(argv, Lit(a.Image))
	argv = append(argv, Lits(cmd...)...)
	argv = append(argv, Lits(a.Args...)...)
	r.exec("ExecStart", "", argv...)

	r.exec("ExecStartPost", "", r.hook("post-start", r.postStartArgs()...)...)
	r.exec("ExecStop", "-", r.hook("drain")...)
	r.exec("ExecStop", "", Lit(cli), Lit("stop"), Lit("-t"), Lit(strconv.Itoa(stop)), Raw(containerName))
	r.exec("ExecStopPost", "-"+r.secretsPrefix(), r.hook("post-stop", r.secretsDirArg()...)...)
	r.exec("ExecStopPost", "-", Lit(cli), Lit("rm"), Lit("-f"), Raw(containerName))
	if podmanSecrets {
		r.podmanSecretsRemove(cli, "ExecStopPost")
	}
	// The CLI gets N seconds to stop the container, systemd a margin on top.
	r.u.add("Service", "TimeoutStopSec", strconv.Itoa(stop+5))
	if a.Runtime == spec.RuntimeDocker {
		r.u.add("Unit", "Requires", "docker.service")
		r.u.add("Unit", "After", "docker.service")
	}
}

// containerEnv is the app's environment plus registrator's SERVICE_*
// conventions; values the spec sets itself win.
func containerEnv(a *spec.App) []string {
	env := map[string]string{"SERVICE_NAME": a.Name}
	if len(a.Ports) == 1 && len(a.Ports[0].Tags) > 0 {
		env["SERVICE_TAGS"] = strings.Join(a.Ports[0].Tags, ",")
	}
	for _, p := range a.Ports {
		env[fmt.Sprintf("SERVICE_%d_NAME", p.Container)] = p.Name
		if len(p.Tags) > 0 {
			env[fmt.Sprintf("SERVICE_%d_TAGS", p.Container)] = strings.Join(p.Tags, ",")
		}
	}
	for k, v := range a.LiteralEnv() {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// PortVar is the environment variable that tells an exec-runtime instance
// which port to listen on: PORT for the first port, PORT_<NAME> for each.
func PortVar(name string) string {
	return "PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (r *appRenderer) renderExec() {
	a := r.app
	lit := a.LiteralEnv()
	for _, k := range sortedKeys(lit) {
		r.env(k, lit[k])
	}
	// Fixed ports are set here; the others are allocated by the pre-start
	// hook and read from the environment file it writes.
	var alloc []Arg
	for i, p := range a.Ports {
		vars := []string{PortVar(p.Name)}
		if i == 0 {
			vars = append([]string{"PORT"}, vars...)
		}
		if p.Host == 0 {
			// One free port, published under every name of this port.
			alloc = append(alloc, Lit("--alloc"), Lit(strings.Join(vars, ",")))
			continue
		}
		for _, v := range vars {
			r.env(v, strconv.Itoa(p.Host))
		}
	}
	r.u.add("Service", "EnvironmentFile", "-"+r.envFile())
	pre := append([]Arg{Lit("--env-file"), Raw(r.envFile())}, alloc...)
	pre = append(pre, r.secretArgs()...)
	if a.User != "" && len(a.SecretEnv()) > 0 {
		// The app's user reads its env file (berth hook exec below).
		pre = append(pre, Lit("--owner"), Lit(a.User))
	}
	r.exec("ExecStartPre", r.secretsPrefix(), r.hook("pre-start", pre...)...)
	argv := append(Lits(a.Command...), Lits(a.Args...)...)
	if len(a.SecretEnv()) > 0 {
		// Secrets reach the app's environment only: berth hook exec reads
		// the env file and replaces itself with the app. An EnvironmentFile=
		// would hand them to every hook process of the unit too.
		argv = append([]Arg{Lit(r.o.Berth), Lit("hook"), Lit("exec"), Lit("--env-file"), Raw(r.secretsDir() + "/" + SecretsEnvFile), Lit("--")}, argv...)
	}
	r.exec("ExecStart", "", argv...)
	r.exec("ExecStartPost", "", r.hook("post-start", r.postStartArgs()...)...)
	r.exec("ExecStop", "-", r.hook("drain")...)
	r.exec("ExecStopPost", "-"+r.secretsPrefix(), r.hook("post-stop", append([]Arg{Lit("--env-file"), Raw(r.envFile())}, r.secretsDirArg()...)...)...)
	r.u.add("Service", "TimeoutStopSec", seconds(a.StopTimeout.D()))
	if a.User != "" {
		user, group, _ := strings.Cut(a.User, ":")
		r.u.add("Service", "User", user)
		if group != "" {
			r.u.add("Service", "Group", group)
		}
	}
	if a.Resources.Memory != "" {
		r.u.add("Service", "MemoryMax", a.Resources.Memory)
	}
	if a.Resources.CPUs > 0 {
		r.u.add("Service", "CPUQuota", strconv.FormatFloat(a.Resources.CPUs*100, 'f', -1, 64)+"%")
	}
}

func (r *appRenderer) renderPlacement() {
	p := r.app.Placement
	if !p.AllowColocation && !p.Global {
		r.u.add("X-Fleet", "Conflicts", r.app.Name+"@*.service")
	}
	for _, m := range p.MachineMetadata {
		r.u.add("X-Fleet", "MachineMetadata", m)
	}
	if p.Global {
		r.u.add("X-Fleet", "Global", "true")
	}
	if p.MachineOf != "" {
		r.u.add("X-Fleet", "MachineOf", p.MachineOf)
	}
}

// seconds formats d for systemd time settings, in whole seconds or ms.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

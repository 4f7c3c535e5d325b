package spec

// APIVersion is the spec format this build writes and reads. Specs with the
// same major version ("berth/v1") are accepted; a newer major is refused.
const APIVersion = "berth/v1"

// Runtimes that an app may run on.
const (
	RuntimeDocker = "docker" // the default: a container run by the Docker CLI
	RuntimePodman = "podman" // the same container run by podman
	RuntimeExec   = "exec"   // a plain binary run directly by systemd
)

// Restart policies, with systemd's meaning.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNo        = "no"
)

// Pull policies for container images.
const (
	PullAlways  = "always"  // pull before every start; a failed pull fails the start
	PullMissing = "missing" // try to pull; start with the local image if the pull fails
	PullNever   = "never"   // never pull
)

// Upstream selection policies of the router.
const (
	PolicyRoundRobin = "round_robin"
	PolicyLeastConn  = "least_conn"
	PolicyP2C        = "p2c"
)

// App is one app spec. The zero values of optional fields are replaced by
// the defaults documented on each field when the spec is parsed.
type App struct {
	// APIVersion must be "berth/v1" (required).
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Name is the app's name: lowercase letters, digits and '-', starting
	// with a letter, at most 63 characters. It names the template unit
	// (<name>@.service), the containers (<name>-<instance>) and DNS names.
	Name string `yaml:"name" json:"name"`
	// Version is the app's semantic version (default "0.0.0").
	Version string `yaml:"version" json:"version"`
	// Image is the container image (required unless runtime is exec).
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// Pull is the image pull policy: always, missing (default) or never.
	Pull string `yaml:"pull,omitempty" json:"pull,omitempty"`
	// PullSecret names the app's sealed secret holding registry
	// credentials as a docker config.json ({"auths": {...}}), or is
	// "aws:ecr" to log in to Amazon ECR with the node's instance role
	// (default: none, anonymous pulls). Container runtimes only.
	PullSecret string `yaml:"pullSecret,omitempty" json:"pullSecret,omitempty"`
	// Command replaces the image's entrypoint; with runtime exec it is the
	// absolute path of the binary followed by its first arguments (required).
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Args are appended to the command (or the image's default command).
	Args []string `yaml:"args,omitempty" json:"args,omitempty"`
	// Runtime is docker (default), podman or exec.
	Runtime string `yaml:"runtime,omitempty" json:"runtime,omitempty"`
	// Instances is how many instances to start (default 1).
	Instances int `yaml:"instances,omitempty" json:"instances,omitempty"`
	// Ports the app listens on.
	Ports []Port `yaml:"ports,omitempty" json:"ports,omitempty"`
	// Env is passed to the app's process. A value "secret:NAME" is
	// replaced on the node by the app's sealed secret NAME (berth secret
	// put), through a file on tmpfs: never in a unit or in etcd in clear.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Volumes are bind mounts (container runtimes only).
	Volumes []Volume `yaml:"volumes,omitempty" json:"volumes,omitempty"`
	// Domains the router serves for this app: exact hosts or "*.example.com".
	Domains []string `yaml:"domains,omitempty" json:"domains,omitempty"`
	// Health is how berth decides an instance is ready (default: a TCP
	// connect to the first port, if there is one).
	Health *Health `yaml:"health,omitempty" json:"health,omitempty"`
	// IdleTimeout passivates the app after that long without requests;
	// 0 (default) never passivates.
	IdleTimeout Duration `yaml:"idleTimeout,omitempty" json:"idleTimeout,omitempty"`
	// KeepWarm lists daily windows during which the app is never passivated.
	KeepWarm []Window `yaml:"keepWarm,omitempty" json:"keepWarm,omitempty"`
	// Restart is the restart policy (default: always after 5s).
	Restart Restart `yaml:"restart,omitempty" json:"restart,omitempty"`
	// StopTimeout is how long a stopping instance gets before it is killed
	// (default 10s); it sets both "docker stop -t" and TimeoutStopSec.
	StopTimeout Duration `yaml:"stopTimeout,omitempty" json:"stopTimeout,omitempty"`
	// StartTimeout bounds a start including the image pull (default 5m).
	StartTimeout Duration `yaml:"startTimeout,omitempty" json:"startTimeout,omitempty"`
	// Resources limits memory and CPU.
	Resources Resources `yaml:"resources,omitempty" json:"resources,omitempty"`
	// User runs the process as this user (name or uid[:gid]).
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Labels are container labels (container runtimes only).
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Placement steers fleet's scheduling.
	Placement Placement `yaml:"placement,omitempty" json:"placement,omitempty"`
	// Routing configures how the router balances requests.
	Routing Routing `yaml:"routing,omitempty" json:"routing,omitempty"`
	// Generation is the release this spec was deployed as (berth deploy
	// numbers an app's releases from 1; 0 means 1). Set by berth, not by
	// the operator: a spec file cannot carry it.
	Generation int64 `yaml:"-" json:"generation,omitempty"`
}

// Gen is the app's release generation (1 when unset).
func (a *App) Gen() int64 { return max(a.Generation, 1) }

// Port is one port the app listens on.
type Port struct {
	// Container is the port inside the container (or the port the exec
	// binary is told to listen on when Host is 0): 1..65535, required.
	Container int `yaml:"container" json:"container"`
	// Protocol is tcp (default) or udp.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// Name names the port (SERVICE_<port>_NAME, SRV records); default: the
	// app's name for the first port, "<name>-<port>" for the others.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Host is the published host port; 0 (default) publishes a random one
	// (container runtimes) or allocates a free one at start (exec).
	Host int `yaml:"host,omitempty" json:"host,omitempty"`
	// Tags are registry tags (SERVICE_<port>_TAGS), e.g. "http".
	Tags []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Volume is a bind mount.
type Volume struct {
	// Source is an absolute host path (required).
	Source string `yaml:"source" json:"source"`
	// Target is an absolute path in the container (required).
	Target string `yaml:"target" json:"target"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `yaml:"readOnly,omitempty" json:"readOnly,omitempty"`
}

// Health is an instance's readiness check. Exactly one of HTTP, TCP and
// Command may be set.
type Health struct {
	// HTTP is a path probed with GET on the first port; 2xx and 3xx are healthy.
	HTTP string `yaml:"http,omitempty" json:"http,omitempty"`
	// TCP checks that the first port accepts connections.
	TCP bool `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	// Command is run (inside the container, or on the node for exec); exit 0 is healthy.
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Interval between probes (default 5s).
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout of one probe (default 2s).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// StartPeriod is how long a starting instance may take to become healthy (default 60s).
	StartPeriod Duration `yaml:"startPeriod,omitempty" json:"startPeriod,omitempty"`
}

// Restart is the restart policy.
type Restart struct {
	// Policy is always (default), on-failure or no.
	Policy string `yaml:"policy,omitempty" json:"policy,omitempty"`
	// Delay before a restart (default 5s): systemd's RestartSec.
	Delay Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	// Burst restarts within Interval put the unit in failed state
	// (defaults 5 in 10 minutes): StartLimitBurst / StartLimitIntervalSec.
	Burst int `yaml:"burst,omitempty" json:"burst,omitempty"`
	// Interval of the burst window (default 10m); it must exceed
	// Burst × Delay or the limit could never trigger.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// Resources are limits on the app's processes.
type Resources struct {
	// Memory limit with a unit suffix: 512M, 1G (none by default).
	Memory string `yaml:"memory,omitempty" json:"memory,omitempty"`
	// CPUs is a CPU quota in cores, e.g. 0.5 (none by default).
	CPUs float64 `yaml:"cpus,omitempty" json:"cpus,omitempty"`
}

// Placement is fleet scheduling.
type Placement struct {
	// AllowColocation lets two instances of the app run on one machine
	// (default false: [X-Fleet] Conflicts=<name>@*.service).
	AllowColocation bool `yaml:"allowColocation,omitempty" json:"allowColocation,omitempty"`
	// MachineMetadata restricts instances to machines with this metadata ("role=worker").
	MachineMetadata []string `yaml:"machineMetadata,omitempty" json:"machineMetadata,omitempty"`
	// Global runs one instance on every (matching) machine.
	Global bool `yaml:"global,omitempty" json:"global,omitempty"`
	// MachineOf places instances on the machine running that unit.
	MachineOf string `yaml:"machineOf,omitempty" json:"machineOf,omitempty"`
}

// Routing is the router's behaviour for the app.
type Routing struct {
	// Policy is round_robin (default), least_conn or p2c.
	Policy string `yaml:"policy,omitempty" json:"policy,omitempty"`
	// MaxConns limits concurrent requests per router; 0 is unlimited.
	MaxConns int `yaml:"maxConns,omitempty" json:"maxConns,omitempty"`
	// HTTPSRedirect redirects plain HTTP requests to HTTPS: the older
	// spelling of HTTPS "redirect".
	HTTPSRedirect bool `yaml:"httpsRedirect,omitempty" json:"httpsRedirect,omitempty"`
	// HTTPS is what plain HTTP gets: "both" (default: served on HTTP and
	// HTTPS alike), "redirect" (308 to the same URL on https) or "only"
	// (403, pointing at the https URL). ACME's HTTP-01 validations are
	// answered in every case.
	HTTPS string `yaml:"https,omitempty" json:"https,omitempty"`
	// HSTS, when above zero, sends Strict-Transport-Security with this
	// max-age on responses over HTTPS (default 0: none).
	HSTS Duration `yaml:"hsts,omitempty" json:"hsts,omitempty"`
	// Protocol the router speaks to the instances: http (HTTP/1.1,
	// default) or h2c (HTTP/2 without TLS, for gRPC).
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// ActiveHealth makes every router probe each instance's health.http
	// path itself, every health.interval: an instance failing the probe
	// gets no requests from that router until a probe passes again.
	ActiveHealth bool `yaml:"activeHealth,omitempty" json:"activeHealth,omitempty"`
}

// The values of Routing.HTTPS.
const (
	HTTPSBoth     = "both"
	HTTPSRedirect = "redirect"
	HTTPSOnly     = "only"
)

// PlainHTTP is what the app's plain HTTP requests get: Routing.HTTPS, with
// HTTPSRedirect read as "redirect" and "" as "both".
func (r Routing) PlainHTTP() string {
	if r.HTTPS != "" {
		return r.HTTPS
	}
	if r.HTTPSRedirect {
		return HTTPSRedirect
	}
	return HTTPSBoth
}

// Window is a daily time window in UTC, "HH:MM-HH:MM".
type Window string

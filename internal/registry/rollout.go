package registry

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/berthproject/berth/internal/spec"
)

// Release is /berth/v1/releases/<app>/<gen>: one published version of an
// app's spec. Generations count from 1 per app; an app deployed before
// releases existed (berth apply) is generation 1, and so are instance
// records without a generation.
type Release struct {
	App      string    `json:"-"`
	Gen      int64     `json:"gen"`
	Version  string    `json:"version"`
	Spec     *spec.App `json:"spec"`
	Created  int64     `json:"created"`            // unix ms
	By       string    `json:"by,omitempty"`       // user@host of the deploying client
	Strategy string    `json:"strategy"`           // rolling or blue-green (canary: Canary > 0)
	Canary   int       `json:"canary,omitempty"`   // percent, for a canary deploy
	Outcome  string    `json:"outcome"`            // see the Outcome constants
	Reason   string    `json:"reason,omitempty"`   // why it was rolled back, failed or aborted
	Ended    int64     `json:"ended,omitempty"`    // unix ms of the outcome
	Rollback bool      `json:"rollback,omitempty"` // published by berth rollback
}

// Release outcomes.
const (
	OutcomeDeploying  = "deploying"   // its rollout runs
	OutcomeLive       = "live"        // the serving release
	OutcomeSuperseded = "superseded"  // was live, a newer one replaced it
	OutcomeRolledBack = "rolled-back" // its rollout failed or was aborted: the previous one kept serving
)

// Strategies.
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "blue-green"
)

// Rollout is /berth/v1/rollouts/<app>: the deploy of one app in progress
// (at most one per app: it is created in a transaction that fails when
// another one runs). The deployer drives it from etcd, so it survives the
// deploying client; routers read it to split traffic.
type Rollout struct {
	App          string   `json:"-"`
	From         int64    `json:"from"`               // the generation serving before (0: none)
	To           int64    `json:"to"`                 // the generation being deployed
	Strategy     string   `json:"strategy"`           // rolling or blue-green
	Canary       int      `json:"canary,omitempty"`   // percent of requests to To while Phase is canary
	MaxSurge     int      `json:"maxSurge,omitempty"` // new instances starting at once (default 1)
	MaxErrorRate float64  `json:"maxErrorRate,omitempty"`
	Timeout      int64    `json:"timeout"`  // ms the new generation may go without progress
	Deadline     int64    `json:"deadline"` // unix ms: no new healthy instance by then → roll back
	Healthy      int      `json:"healthy"`  // most live instances of To seen (progress)
	Phase        string   `json:"phase"`
	Started      []string `json:"started,omitempty"` // instance numbers of To started so far
	Stopped      []string `json:"stopped,omitempty"` // instance numbers of From stopped so far
	Message      string   `json:"message,omitempty"`
	Updated      int64    `json:"updated"` // unix ms of the last step
}

// Rollout phases. Routers route by phase (Snapshot.Serving); the last two
// end a rollout.
const (
	PhaseRolling     = "rolling"      // rolling: both generations serve, old ones drain one by one
	PhaseStarting    = "starting"     // blue-green: the new set starts; the old one serves
	PhaseCanary      = "canary"       // Canary percent of requests go to To, sticky per client
	PhaseSwitched    = "switched"     // blue-green: To serves alone; the old set stops
	PhaseRollingBack = "rolling-back" // From serves alone; To's instances stop
	PhaseDone        = "done"
	PhaseRolledBack  = "rolled-back"
)

// Active reports whether the rollout still runs.
func (r *Rollout) Active() bool { return r.Phase != PhaseDone && r.Phase != PhaseRolledBack }

// Generation is the instance's generation (1 for records without one).
func (in *Instance) Generation() int64 { return max(in.Gen, 1) }

// InstanceID is the registry id of instance n of generation gen: "n" for
// generation 1 (as before releases existed), "<gen>.<n>" after, so that
// two generations run side by side.
func InstanceID(gen int64, n string) string {
	if gen <= 1 {
		return n
	}
	return strconv.FormatInt(gen, 10) + "." + n
}

func (k Keys) rolloutsPrefix() string { return k.Prefix() + "rollouts/" }
func (k Keys) releasesPrefix() string { return k.Prefix() + "releases/" }

// RolloutKey is the key of an app's rollout.
func (k Keys) RolloutKey(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.rolloutsPrefix() + app, nil
}

// Releases is the prefix of an app's releases (ordered by generation).
func (k Keys) Releases(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.releasesPrefix() + app + "/", nil
}

// ReleaseKey is the key of an app's release gen (zero-padded, so keys sort
// by generation).
func (k Keys) ReleaseKey(app string, gen int64) (string, error) {
	p, err := k.Releases(app)
	if err != nil {
		return "", err
	}
	if gen < 1 {
		return "", fmt.Errorf("%w: generation %d", ErrBadName, gen)
	}
	return fmt.Sprintf("%s%010d", p, gen), nil
}

// ReleaseGen parses the generation of a release key.
func (k Keys) ReleaseGen(key string) (app string, gen int64, ok bool) {
	rest, ok := strings.CutPrefix(key, k.releasesPrefix())
	if !ok {
		return "", 0, false
	}
	app, g, ok := strings.Cut(rest, "/")
	if !ok || checkApp(app) != nil {
		return "", 0, false
	}
	gen, err := strconv.ParseInt(g, 10, 64)
	return app, gen, err == nil && gen >= 1
}

// Serving is how an app's requests are split: Canary takes Percent of
// them (sticky per client), Stable the rest.
type Serving struct {
	Stable  []*Instance
	Canary  []*Instance
	Percent int
	Gen     int64 // the canary's generation
}

// Serving returns which live instances take an app's requests, by its
// rollout's phase: all of them without a rollout and while rolling; the
// old generation only while a blue-green set starts or a rollback runs;
// the new one only once blue-green switched; a split during a canary. A
// side with no live instance never black-holes: the other serves all.
func (s *Snapshot) Serving(app string) Serving {
	live := s.Live(app)
	r := s.Rollouts[app]
	if r == nil || !r.Active() || r.Phase == PhaseRolling {
		return Serving{Stable: live}
	}
	var old, next []*Instance
	for _, in := range live {
		if in.Generation() == r.To {
			next = append(next, in)
		} else {
			old = append(old, in)
		}
	}
	pick := func(a, b []*Instance) Serving {
		if len(a) == 0 {
			return Serving{Stable: b}
		}
		return Serving{Stable: a}
	}
	switch r.Phase {
	case PhaseStarting, PhaseRollingBack:
		return pick(old, next)
	case PhaseSwitched:
		return pick(next, old)
	case PhaseCanary:
		if len(old) == 0 || len(next) == 0 || r.Canary <= 0 {
			return Serving{Stable: live}
		}
		return Serving{Stable: old, Canary: next, Percent: min(r.Canary, 100), Gen: r.To}
	}
	return Serving{Stable: live}
}

// SplitInstanceID is InstanceID's inverse: the generation and instance
// number of a registry instance id ("n" is generation 1).
func SplitInstanceID(id string) (gen int64, n string) {
	g, rest, ok := strings.Cut(id, ".")
	if !ok {
		return 1, id
	}
	gen, err := strconv.ParseInt(g, 10, 64)
	if err != nil || gen < 1 {
		return 1, id
	}
	return gen, rest
}

// DeployLeader is the prefix of the cluster deployer's election.
func (k Keys) DeployLeader() string { return k.Prefix() + "deploy/leader/" }

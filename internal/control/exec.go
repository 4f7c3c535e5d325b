package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// Registrar keeps instance records on a lease (a registry.LeaseOwner).
type Registrar interface {
	Put(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// Exec runs apps of runtime exec as local processes: one per instance, each
// on a free port passed in PORT / PORT_<NAME> and told in HOST to listen on
// the IP it is registered with (127.0.0.1 unless IP says otherwise: not on
// every interface), health-gated registration on the Registrar's lease,
// restarts after a crash as the spec's restart policy says, SIGTERM then
// SIGKILL after the stop timeout. Processes die with berth (Pdeathsig), so
// nothing is orphaned.
type Exec struct {
	KV   clientv3.KV
	Keys registry.Keys
	Reg  Registrar
	Log  logrus.FieldLogger
	// IP is the address instances are registered with and told to listen
	// on in HOST (default 127.0.0.1).
	IP string
	// Node is the node id in instance records (default "local").
	Node string
	// Output receives the instances' stdout and stderr, line by line with
	// a "app-id |" prefix (default: discarded).
	Output io.Writer
	// Secrets opens an app's sealed secret for its env values
	// "secret:NAME"; the value goes to the process's environment only.
	// Nil: an app with such a value fails to start, naming it.
	Secrets func(ctx context.Context, app, name string) ([]byte, error)
	// AppEnv adds environment variables ("K=V") to the instances of an
	// app, by app name, after the spec's (default none). berth up --demo
	// gives the demo's instances its control endpoint this way.
	AppEnv map[string][]string

	mu    sync.Mutex
	procs map[string]map[string]*proc // app → instance id → process
}

type proc struct {
	app      *spec.App
	id       string
	stopping chan struct{} // closed by Stop
	done     chan struct{} // closed when the supervisor returns
	mu       sync.Mutex
	cmd      *exec.Cmd
}

func (e *Exec) ip() string {
	if e.IP == "" {
		return "127.0.0.1"
	}
	return e.IP
}

// Start starts the app's missing instances (1..Instances of its
// generation) and stops those above Instances (a scale down). Instances
// of other generations (a deploy in progress) are left alone.
func (e *Exec) Start(ctx context.Context, app *spec.App) error {
	if err := checkExec(app); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	gen := app.Gen()
	for id, p := range e.procs[app.Name] {
		if g, n := registry.SplitInstanceID(id); g == gen && atoi(n) > app.Instances {
			close(p.stopping)
			delete(e.procs[app.Name], id)
		}
	}
	for i := 1; i <= app.Instances; i++ {
		e.startLocked(app, registry.InstanceID(gen, strconv.Itoa(i)))
	}
	return nil
}

// StartInstance starts instance n of the app's generation (a deploy's
// step); a running one is left as it is.
func (e *Exec) StartInstance(ctx context.Context, app *spec.App, n string) error {
	if err := checkExec(app); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.startLocked(app, registry.InstanceID(app.Gen(), n))
	return nil
}

// StopInstance stops one instance (by registry id) and waits for it to
// exit: its record leaves the routes first, then SIGTERM.
func (e *Exec) StopInstance(ctx context.Context, app, id string) error {
	e.mu.Lock()
	p := e.procs[app][id]
	delete(e.procs[app], id)
	e.mu.Unlock()
	if p == nil {
		return nil
	}
	close(p.stopping)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func checkExec(app *spec.App) error {
	if app.Runtime != spec.RuntimeExec {
		return fmt.Errorf("app %s: runtime %s needs a node with its engine; the exec driver runs runtime exec only", app.Name, app.Runtime)
	}
	return nil
}

// startLocked starts instance id unless it runs.
func (e *Exec) startLocked(app *spec.App, id string) {
	if e.procs == nil {
		e.procs = map[string]map[string]*proc{}
	}
	if e.procs[app.Name] == nil {
		e.procs[app.Name] = map[string]*proc{}
	}
	if p := e.procs[app.Name][id]; p != nil {
		select {
		case <-p.done:
		default:
			return // running
		}
	}
	p := &proc{app: app, id: id, stopping: make(chan struct{}), done: make(chan struct{})}
	e.procs[app.Name][id] = p
	go e.supervise(p)
}

// Stop stops every instance of the app and waits for them to exit.
func (e *Exec) Stop(ctx context.Context, app *spec.App) error {
	e.mu.Lock()
	procs := e.procs[app.Name]
	delete(e.procs, app.Name)
	e.mu.Unlock()
	for _, p := range procs {
		close(p.stopping)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// StopAll stops every app (berth up's shutdown).
func (e *Exec) StopAll(ctx context.Context) error {
	e.mu.Lock()
	var apps []*spec.App
	for _, procs := range e.procs {
		for _, p := range procs {
			apps = append(apps, p.app)
			break
		}
	}
	e.mu.Unlock()
	var errs []error
	for _, a := range apps {
		errs = append(errs, e.Stop(ctx, a))
	}
	return errors.Join(errs...)
}

// supervise runs one instance until Stop, restarting it per the policy.
func (e *Exec) supervise(p *proc) {
	defer close(p.done)
	log := e.Log.WithFields(logrus.Fields{"app": p.app.Name, "instance": p.id})
	key, _ := e.Keys.Instance(p.app.Name, p.id)
	for {
		err := e.runOnce(p, key, log)
		select {
		case <-p.stopping:
			return
		default:
		}
		policy := p.app.Restart.Policy
		if policy == spec.RestartNo || (policy == spec.RestartOnFailure && err == nil) {
			log.WithError(err).Info("instance exited; not restarting (restart policy)")
			return
		}
		log.WithError(err).WithField("restart_in", p.app.Restart.Delay.String()).Warn("instance exited; restarting")
		select {
		case <-p.stopping:
			return
		case <-time.After(p.app.Restart.Delay.D()):
		}
	}
}

// runOnce starts the process, registers it once healthy, and returns when
// it exits (or after stopping it on Stop).
func (e *Exec) runOnce(p *proc, key string, log logrus.FieldLogger) error {
	a := p.app
	env := os.Environ()
	env = append(env, "BERTH_APP="+a.Name, "BERTH_INSTANCE="+p.id, "BERTH_VERSION="+a.Version)
	for k, v := range a.Env {
		name, ref, err := spec.ParseSecretRef(v)
		if err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
		if ref {
			if e.Secrets == nil {
				return fmt.Errorf("env %s: refers to sealed secret %s, and this runner opens no secrets", k, name)
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			val, err := e.Secrets(sctx, a.Name, name)
			cancel()
			if err != nil {
				return fmt.Errorf("env %s: %w", k, err)
			}
			v = string(val)
		}
		env = append(env, k+"="+v)
	}
	env = append(env, e.AppEnv[a.Name]...)
	// After the spec's env: the instance is registered on this address, so
	// that is where it listens (not on every interface).
	env = append(env, "HOST="+e.ip())
	var ports []registry.NamedPort
	for i, port := range a.Ports {
		n := port.Host
		if n == 0 {
			l, err := net.Listen("tcp", e.ip()+":0")
			if err != nil {
				return err
			}
			n = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		env = append(env, units.PortVar(port.Name)+"="+strconv.Itoa(n))
		if i == 0 {
			env = append(env, "PORT="+strconv.Itoa(n))
		}
		ports = append(ports, registry.NamedPort{Name: port.Name, Addr: net.JoinHostPort(e.ip(), strconv.Itoa(n)), Proto: port.Protocol, Tags: port.Tags})
	}
	addr := ""
	if len(ports) > 0 {
		addr = ports[0].Addr
	}
	// As the pre-start hook does for units: clear a stale record, mark the
	// app starting (requests are then held, not refused).
	h := &hook.Hooks{KV: e.KV, Keys: e.Keys, Log: e.Log}
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := h.PreStart(pctx, &hook.Instance{App: a.Name, ID: p.id}); err != nil {
		log.WithError(err).Warn("pre-start")
	}
	cancel()
	argv := append(append([]string{}, a.Command...), a.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := e.Output
	if out == nil {
		out = io.Discard
	}
	prefix := fmt.Sprintf("%s-%s | ", a.Name, p.id)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	var copying sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		copying.Add(1)
		go func() {
			defer copying.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				fmt.Fprintf(out, "%s%s\n", prefix, sc.Text())
			}
		}()
	}
	exited := make(chan error, 1)
	go func() { copying.Wait(); exited <- cmd.Wait() }()
	log.WithField("addr", addr).Debug("instance started")

	// Register once healthy (or right away without a port to check).
	healthCtx, cancelHealth := context.WithCancel(context.Background())
	defer cancelHealth()
	registered := make(chan struct{})
	if addr != "" {
		go func() {
			check := hook.Check("tcp")
			interval := 250 * time.Millisecond
			if h := a.Health; h != nil {
				interval = min(h.Interval.D(), 500*time.Millisecond)
				if h.HTTP != "" {
					check = hook.Check("http:" + h.HTTP)
				}
			}
			if err := check.WaitHealthy(healthCtx, addr, interval); err != nil {
				return
			}
			rec := &registry.Instance{App: a.Name, ID: p.id, Node: e.node(), Unit: units.UnitOfID(a.Name, p.id),
				Version: a.Version, State: registry.StateUp, Gen: a.Generation}
			rec.SetPorts(ports)
			k, v, err := registry.InstanceKV(e.Keys, rec)
			if err != nil {
				return
			}
			if err := e.Reg.Put(healthCtx, k, v); err != nil {
				log.WithError(err).Warn("register instance")
				return
			}
			close(registered)
			log.WithField("addr", addr).Info("instance up")
			e.markStarted(healthCtx, a.Name)
		}()
	}
	var err error
	select {
	case err = <-exited:
	case <-p.stopping:
		err = e.stopProcess(p, key, exited)
	}
	cancelHealth()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Reg.Delete(dctx, key)
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	return err
}

// stopProcess drains the instance, sends SIGTERM to its process group and
// SIGKILL after the stop timeout.
func (e *Exec) stopProcess(p *proc, key string, exited <-chan error) error {
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e.Reg.Delete(dctx, key) // leave the routes before the process goes
	cancel()
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(p.app.StopTimeout.D()):
		syscall.Kill(-pid, syscall.SIGKILL)
		return <-exited
	}
}

func (e *Exec) node() string {
	if e.Node == "" {
		return "local"
	}
	return e.Node
}

func (e *Exec) markStarted(ctx context.Context, app string) {
	h := &hook.Hooks{KV: e.KV, Keys: e.Keys, Log: e.Log}
	if err := h.MarkStarted(ctx, app); err != nil && !errors.Is(err, context.Canceled) {
		e.Log.WithError(err).WithField("app", app).Warn("mark app started")
	}
}

var _ Driver = (*Exec)(nil)

// Package daemon is the systemd plumbing shared by berth's long-running
// commands: socket-activated listeners, sd_notify readiness and stopping,
// the watchdog, and the local admin listener.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Sockets are the sockets systemd passed (socket activation), by their
// FileDescriptorName.
type Sockets struct {
	Streams map[string][]net.Listener
	Packets map[string][]net.PacketConn
}

// Activated returns the sockets systemd passed, once per process (the
// environment is unset after the first call, as sd_listen_fds does).
func Activated() (*Sockets, error) {
	s := &Sockets{Streams: map[string][]net.Listener{}, Packets: map[string][]net.PacketConn{}}
	for _, f := range activation.Files(true) {
		name := f.Name()
		if l, err := net.FileListener(f); err == nil {
			s.Streams[name] = append(s.Streams[name], l)
		} else if pc, err := net.FilePacketConn(f); err == nil {
			s.Packets[name] = append(s.Packets[name], pc)
		} else {
			f.Close()
			return nil, fmt.Errorf("socket activation: fd %s is neither a stream nor a datagram socket", name)
		}
		f.Close()
	}
	return s, nil
}

// Ready tells systemd the service is ready (Type=notify); a no-op outside
// systemd.
func Ready(log logrus.FieldLogger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.WithError(err).Warn("sd_notify READY failed")
	} else if ok {
		log.Debug("notified systemd: ready")
	}
}

// Stopping tells systemd the service is shutting down.
func Stopping() { daemon.SdNotify(false, daemon.SdNotifyStopping) }

// Watchdog pings systemd's watchdog at half its interval until ctx ends,
// as long as healthy returns true. Without WatchdogSec it returns at once.
func Watchdog(ctx context.Context, healthy func() bool) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy() {
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}

// ServeAdmin serves h on addr until ctx ends. An empty addr disables it.
// It returns the listener's address (useful with port 0) at once.
func ServeAdmin(ctx context.Context, addr string, h http.Handler, log logrus.FieldLogger) (string, error) {
	if addr == "" {
		return "", nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin listener: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("admin listener failed")
		}
	}()
	log.WithField("addr", l.Addr().String()).Info("admin listening")
	return l.Addr().String(), nil
}

// HealthMux serves what every daemon's admin listener has: /healthz,
// /readyz (503 until ready reports true) and /metrics from reg. Callers add
// their own endpoints to the returned mux.
func HealthMux(reg *prometheus.Registry, ready func() bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "waiting for the first registry snapshot", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// Hostname returns the host name, or "unknown".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

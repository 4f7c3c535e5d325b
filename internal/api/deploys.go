package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/berthproject/berth/internal/deploy"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/view"
)

// DeployRequest is the body of POST /v1/apps/{app}/deploys (berth deploy).
type DeployRequest struct {
	Spec         json.RawMessage `json:"spec"`                   // the app's spec (its name must be {app})
	Strategy     string          `json:"strategy,omitempty"`     // rolling (default) or blue-green
	Canary       int             `json:"canary,omitempty"`       // percent of clients on the new version until promoted
	MaxSurge     int             `json:"maxSurge,omitempty"`     // rolling: new instances starting at once (default 1)
	Timeout      string          `json:"timeout,omitempty"`      // Go duration; default 5m
	MaxErrorRate float64         `json:"maxErrorRate,omitempty"` // canary: 5xx share that rolls back
	Force        bool            `json:"force,omitempty"`        // allow a version not newer than the live one
}

// RollbackRequest is the body of POST /v1/apps/{app}/deploys/rollback.
type RollbackRequest struct {
	To       string `json:"to,omitempty"`       // version to go back to (default: the one before the live one)
	Strategy string `json:"strategy,omitempty"` // as for a deploy
	Timeout  string `json:"timeout,omitempty"`
}

// AbortRequest is the body of POST /v1/apps/{app}/deploys/abort.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

// History is the answer of GET /v1/apps/{app}/deploys: the releases,
// oldest first, and the current (or last) rollout.
type History struct {
	App      string              `json:"app"`
	Releases []*registry.Release `json:"releases"`
	Rollout  *view.Rollout       `json:"rollout,omitempty"`
}

// ReleaseResult is the answer of a deploy or rollback.
type ReleaseResult struct {
	App      string `json:"app"`
	Gen      int64  `json:"gen"`
	Version  string `json:"version"`
	Strategy string `json:"strategy"`
	Canary   int    `json:"canary,omitempty"`
	Rollback bool   `json:"rollback,omitempty"`
}

func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badField("timeout", fmt.Sprintf("must be a positive duration such as \"5m\", got %q", s))
	}
	return d, nil
}

func (s *Server) deployHistory(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	rels, ro, err := deploy.History(ctx, s.kv, s.cfg.Keys, app)
	if err != nil {
		return err
	}
	h := History{App: app, Releases: rels}
	if h.Releases == nil {
		h.Releases = []*registry.Release{}
	}
	if ro != nil {
		h.Rollout = view.RolloutOf(ro)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

func (s *Server) startDeploy(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	var req DeployRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if len(req.Spec) == 0 || string(req.Spec) == "null" {
		return badField("spec", "the app's spec is required (the same fields as a spec file, as JSON)")
	}
	apps, err := spec.Parse(req.Spec)
	if err != nil {
		return prefixFields(toError(err), "spec.")
	}
	if len(apps) != 1 || apps[0].Name != app {
		return badField("spec.name", fmt.Sprintf("must be %q (the app in the path), got %q", app, apps[0].Name))
	}
	timeout, err := parseTimeout(req.Timeout)
	if err != nil {
		return err
	}
	o := deploy.Options{Strategy: req.Strategy, Canary: req.Canary, MaxSurge: req.MaxSurge, Timeout: timeout,
		MaxErrorRate: req.MaxErrorRate, Force: req.Force, By: "api:" + callerOf(r).Name}
	if err := o.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", err.Error())
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	rel, err := deploy.Publish(ctx, s.writer(r), s.cfg.Keys, apps[0], o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, releaseResult(rel))
	return nil
}

func releaseResult(rel *registry.Release) ReleaseResult {
	return ReleaseResult{App: rel.App, Gen: rel.Gen, Version: rel.Version, Strategy: rel.Strategy, Canary: rel.Canary, Rollback: rel.Rollback}
}

// prefixFields puts the spec's field paths under prefix.
func prefixFields(e *Error, prefix string) *Error {
	for i := range e.Fields {
		e.Fields[i].Field = prefix + e.Fields[i].Field
	}
	return e
}

func (s *Server) promoteDeploy(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	if err := deploy.Promote(ctx, s.writer(r), s.cfg.Keys, app); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, StateResult{App: app, Changed: true, Message: "canary promoted: the deploy goes on with its strategy"})
	return nil
}

func (s *Server) abortDeploy(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	var req AbortRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	reason := "aborted by api:" + callerOf(r).Name
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	if err := deploy.Abort(ctx, s.writer(r), s.cfg.Keys, app, reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, StateResult{App: app, Changed: true, Message: "rolling back"})
	return nil
}

func (s *Server) rollbackDeploy(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	var req RollbackRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	timeout, err := parseTimeout(req.Timeout)
	if err != nil {
		return err
	}
	o := deploy.Options{Strategy: req.Strategy, Timeout: timeout, By: "api:" + callerOf(r).Name}
	if err := o.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", err.Error())
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	rel, err := deploy.Rollback(ctx, s.writer(r), s.cfg.Keys, app, req.To, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, releaseResult(rel))
	return nil
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/passivate"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// readBody reads the request body within MaxBody: larger is 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit))
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_request", "read the request body: "+err.Error())
	}
	return b, nil
}

// decodeJSON decodes a JSON body strictly into v: an unknown field or a
// value of the wrong type is a 400 naming the field. An empty body leaves
// v as is when optional.
func decodeJSON(r *http.Request, v any, optional bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, "bad_request", "the request needs a JSON body (see /v1/openapi.json)")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		if dec.More() {
			return errorf(http.StatusBadRequest, "bad_json", "the body holds more than one JSON value")
		}
		return nil
	case errors.As(err, &typeErr):
		return badField(typeErr.Field, fmt.Sprintf("must be a JSON %s, got %s", typeErr.Type.Kind(), typeErr.Value))
	case errors.As(err, &syntaxErr):
		return errorf(http.StatusBadRequest, "bad_json", fmt.Sprintf("the body is not valid JSON at byte %d: %v", syntaxErr.Offset, err))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "bad_json", "the body is not valid JSON: it ends too early")
	}
	if f, ok := bytes.CutPrefix([]byte(err.Error()), []byte("json: unknown field ")); ok {
		name, _ := strconv.Unquote(string(f))
		return badField(name, "unknown field (see /v1/openapi.json for the request's fields)")
	}
	return errorf(http.StatusBadRequest, "bad_json", "the body is not valid JSON: "+err.Error())
}

// writer returns the KV a mutation runs on: every write a transaction
// with its audit record, naming the caller and the request.
func (s *Server) writer(r *http.Request) *auditKV {
	c := callerOf(r)
	id, _ := r.Context().Value(requestKey{}).(string)
	return &auditKV{KV: s.kv, keys: s.cfg.Keys, a: s.audit, rec: AuditRecord{
		Who: c.Name, What: r.Method + " " + r.URL.Path, Route: r.Pattern, Request: id, Remote: r.RemoteAddr}}
}

func (s *Server) etcdCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

// ApplyResult is the answer of POST /v1/apps.
type ApplyResult struct {
	App     string            `json:"app"`
	Version string            `json:"version"`
	Added   []string          `json:"added,omitempty"`   // domains new to the app
	Removed []string          `json:"removed,omitempty"` // domains that left its spec
	Taken   map[string]string `json:"taken,omitempty"`   // domain → the app it was taken from
}

// applyApp is berth apply: the body is one app spec, YAML or JSON (JSON is
// YAML), parsed strictly; every problem is a field of the 400.
func (s *Server) applyApp(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	takeOver := false
	if q := r.URL.Query().Get("takeOver"); q != "" {
		if takeOver, err = strconv.ParseBool(q); err != nil {
			return badField("takeOver", "must be true or false")
		}
	}
	apps, err := spec.Parse(b)
	if err != nil {
		return err
	}
	if len(apps) != 1 {
		return errorf(http.StatusBadRequest, "bad_spec", fmt.Sprintf("the body holds %d app specs; apply one per request", len(apps)))
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	res, err := registry.Apply(ctx, s.writer(r), s.cfg.Keys, apps[0], registry.ApplyOptions{TakeOver: takeOver})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ApplyResult{App: apps[0].Name, Version: apps[0].Version, Added: res.Added, Removed: res.Removed, Taken: res.Taken})
	return nil
}

// deleteApp is berth delete with the server's remover.
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	rm := s.cfg.Remover
	if rm == nil {
		rm = control.RemoverFunc(func(context.Context, string, []string) ([]string, error) {
			return []string{"the units follow the records (node agents, berth up)"}, nil
		})
	}
	d := &control.Deleter{KV: s.writer(r), Keys: s.cfg.Keys, Remover: rm, Wait: s.cfg.DeleteWait,
		RequestTimeout: s.cfg.RequestTimeout, Log: s.log}
	res, err := d.Delete(r.Context(), app)
	if err != nil {
		if res != nil {
			return errorf(toError(err).Status, "delete_incomplete", fmt.Sprintf("%v (the app stays marked deleted; DELETE again resumes)", err))
		}
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// ScaleRequest is the body of POST /v1/apps/{app}/scale.
type ScaleRequest struct {
	Instances *int `json:"instances"` // at least 1
}

// ScaleResult is its answer.
type ScaleResult struct {
	App       string `json:"app"`
	Previous  int    `json:"previous"`
	Instances int    `json:"instances"`
}

func (s *Server) scaleApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	var req ScaleRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Instances == nil || *req.Instances < 1 || *req.Instances > spec.MaxInstances {
		return badField("instances", fmt.Sprintf("must be a whole number from 1 to %d", spec.MaxInstances))
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	prev, err := registry.ScaleApp(ctx, s.writer(r), s.cfg.Keys, app, *req.Instances)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ScaleResult{App: app, Previous: prev, Instances: *req.Instances})
	return nil
}

// StateResult is the answer of passivate and wake.
type StateResult struct {
	App     string `json:"app"`
	Changed bool   `json:"changed"` // false: it already was in that state
	Message string `json:"message"`
}

func (s *Server) passivateApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	cur, _, err := registry.GetStatus(ctx, s.kv, s.cfg.Keys, app)
	if err != nil {
		return err
	}
	if cur != nil && cur.Expected == registry.StatusPassivated {
		writeJSON(w, http.StatusOK, StateResult{App: app, Message: app + " is passivated already"})
		return nil
	}
	if cur == nil {
		return errorf(http.StatusNotFound, "not_found", "app "+app+" has no status: it never ran (or does not exist)")
	}
	if err := passivate.Passivate(ctx, s.writer(r), s.cfg.Keys, app); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, StateResult{App: app, Changed: true, Message: app + " passivated: its units stop; the next request wakes it"})
	return nil
}

func (s *Server) wakeApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	cur, _, err := registry.GetStatus(ctx, s.kv, s.cfg.Keys, app)
	if err != nil {
		return err
	}
	if cur == nil || cur.Expected == registry.StatusDeleted {
		return errorf(http.StatusNotFound, "not_found", "app "+app+" has no status (never ran, or deleted): nothing to wake")
	}
	won, err := registry.Wake(ctx, s.writer(r), s.cfg.Keys, app)
	if err != nil {
		return err
	}
	msg := app + " is started already"
	if won {
		msg = app + " is waking: its units start"
	}
	writeJSON(w, http.StatusOK, StateResult{App: app, Changed: won, Message: msg})
	return nil
}

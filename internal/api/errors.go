package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/deploy"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Error is the body of every error response: {"error": {...}}.
type Error struct {
	Status  int          `json:"status"`           // the HTTP status, repeated
	Code    string       `json:"code"`             // machine-readable: bad_request, bad_spec, unauthorized, ...
	Message string       `json:"message"`          // what went wrong and how to fix it
	Fields  []FieldError `json:"fields,omitempty"` // for bad_spec and bad_request: each bad field
}

// FieldError names one bad field of a request body.
type FieldError struct {
	Field   string `json:"field"`          // path such as "ports[1].container" or "instances"
	Line    int    `json:"line,omitempty"` // line in the body, when known
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// errorf returns an Error with a status and code.
func errorf(status int, code, msg string, fields ...FieldError) *Error {
	return &Error{Status: status, Code: code, Message: msg, Fields: fields}
}

func badField(field, msg string) *Error {
	return errorf(http.StatusBadRequest, "bad_request", field+": "+msg, FieldError{Field: field, Message: msg})
}

// toError maps an error of the packages the API calls to an Error: the
// one place where errors become HTTP statuses.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var specErrs spec.Errors
	if errors.As(err, &specErrs) {
		out := errorf(http.StatusBadRequest, "bad_spec", err.Error())
		for _, f := range specErrs {
			out.Fields = append(out.Fields, FieldError{Field: f.Path, Line: f.Line, Message: f.Msg})
		}
		return out
	}
	var taken *registry.DomainTakenError
	switch {
	case errors.As(err, &taken):
		return errorf(http.StatusConflict, "domain_taken", err.Error()+": drop it from the other app's spec first, or apply with ?takeOver=true")
	case errors.Is(err, registry.ErrBadName):
		return errorf(http.StatusBadRequest, "bad_name", err.Error())
	case errors.Is(err, registry.ErrNoApp), errors.Is(err, registry.ErrNotFound), errors.Is(err, deploy.ErrNoRelease), errors.Is(err, fleet.ErrNoUnit):
		return errorf(http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, registry.ErrConflict), errors.Is(err, deploy.ErrRunning), errors.Is(err, deploy.ErrNotNewer),
		errors.Is(err, deploy.ErrNoRollout), errors.Is(err, deploy.ErrNotCanary), errors.Is(err, registry.ErrReapplied), errors.Is(err, fleet.ErrChanged),
		errors.Is(err, control.ErrStillRegistered):
		return errorf(http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return errorf(http.StatusBadGateway, "etcd_permission", "etcd refused the API's user: "+err.Error()+" (the API connects as berth-operator: docs/security.md)")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, "timeout", "etcd did not answer in time: "+err.Error())
	}
	return errorf(http.StatusInternalServerError, "internal", err.Error())
}

// writeJSON writes v with a status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError writes err as {"error": ...} with its status.
func writeError(w http.ResponseWriter, err error) {
	e := toError(err)
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
	}
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

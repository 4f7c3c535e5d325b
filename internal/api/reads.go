package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/view"
)

// snapshot returns the watch cache's view once it has synced (waiting at
// most 5s), else a 503.
func (s *Server) snapshot(r *http.Request) (*registry.Snapshot, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	select {
	case <-s.src.Synced():
		return s.src.Snapshot(), nil
	case <-ctx.Done():
		return nil, errorf(http.StatusServiceUnavailable, "not_synced", "the API has not read the registry from etcd yet; retry shortly")
	}
}

// list answers a read from the snapshot with X-Berth-Revision.
func (s *Server) list(w http.ResponseWriter, r *http.Request, f func(*registry.Snapshot) any) error {
	snap, err := s.snapshot(r)
	if err != nil {
		return err
	}
	w.Header().Set("X-Berth-Revision", strconv.FormatInt(snap.Rev, 10))
	writeJSON(w, http.StatusOK, f(snap))
	return nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Status(snap) })
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Apps(snap) })
}

// appName returns the {app} path value, checked.
func (s *Server) appName(r *http.Request) (string, error) {
	app := r.PathValue("app")
	if _, err := s.cfg.Keys.App(app); err != nil {
		return "", badField("app", "app names are lowercase letters, digits and '-', starting with a letter (got "+strconv.Quote(app)+")")
	}
	return app, nil
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	snap, err := s.snapshot(r)
	if err != nil {
		return err
	}
	v, ok := view.OneApp(snap, app)
	if !ok {
		return errorf(http.StatusNotFound, "not_found", "app "+app+" not found (GET /v1/apps lists the apps)")
	}
	w.Header().Set("X-Berth-Revision", strconv.FormatInt(snap.Rev, 10))
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) appInstances(w http.ResponseWriter, r *http.Request) error {
	app, err := s.appName(r)
	if err != nil {
		return err
	}
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Instances(snap, app) })
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Instances(snap, "") })
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Nodes(snap) })
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Domains(snap) })
}

func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Routes(snap) })
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, func(snap *registry.Snapshot) any { return view.Certificates(snap) })
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	limit := int64(100)
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 || n > 10000 {
			return badField("limit", "must be a whole number from 1 to 10000")
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	recs, err := ListAudit(ctx, s.kv, s.cfg.Keys, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recs)
	return nil
}

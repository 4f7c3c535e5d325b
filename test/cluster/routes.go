package cluster

import (
	"encoding/json"
	"strings"
)

// RoutesOn returns the demo app's backends as node n's own etcd member
// sees them (a partitioned node answers from its side).
func (c *Cluster) RoutesOn(n *Node) ([]string, error) {
	out, err := n.Try(c.nodeBerth("routes", "-o", "json", "--etcd-request-timeout", "2s")...)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Host     string   `json:"host"`
		Backends []string `json:"backends"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rows); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Host == "demo.localhost" {
			return r.Backends, nil
		}
	}
	return nil, nil
}

// Routes returns the backends the registry holds for the demo app.
func (c *Cluster) Routes() []string {
	for _, n := range c.Nodes {
		out, err := n.Try(c.nodeBerth("routes", "-o", "json", "--etcd-request-timeout", "2s")...)
		if err != nil {
			continue
		}
		var rows []struct {
			Host     string   `json:"host"`
			Backends []string `json:"backends"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(out)), &rows) != nil {
			continue
		}
		for _, r := range rows {
			if r.Host == "demo.localhost" {
				return r.Backends
			}
		}
		return nil
	}
	return nil
}

// Live is the number of live instances of the demo app.
func (c *Cluster) Live() int { return len(c.Routes()) }

// Package dockerapi is a small client of the Docker Engine API on its unix
// socket: the container list, inspect, and the event stream, which is all
// the node agent's registrar needs.
package dockerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultSocket is the engine's usual socket.
const DefaultSocket = "/var/run/docker.sock"

// Client talks to one engine.
type Client struct {
	Socket string
	hc     *http.Client
}

// New returns a client of the engine at socket.
func New(socket string) *Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: &http.Transport{DialContext: dial, ResponseHeaderTimeout: 30 * time.Second}}}
}

// Summary is one entry of the container list.
type Summary struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Image  string            `json:"Image"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// PortBinding is one published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// Container is what inspect returns (the fields berth uses).
type Container struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Config struct {
		Image        string              `json:"Image"`
		Env          []string            `json:"Env"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"Config"`
	State struct {
		Running bool `json:"Running"`
		Health  *struct {
			Status string `json:"Status"`
		} `json:"Health"`
	} `json:"State"`
	NetworkSettings struct {
		IPAddress string                   `json:"IPAddress"`
		Ports     map[string][]PortBinding `json:"Ports"`
		Networks  map[string]struct {
			IPAddress string `json:"IPAddress"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// Event is one entry of the event stream.
type Event struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("docker engine: GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// List returns the running containers.
func (c *Client) List(ctx context.Context) ([]Summary, error) {
	var out []Summary
	return out, c.get(ctx, "/containers/json", &out)
}

// Inspect returns one container.
func (c *Client) Inspect(ctx context.Context, id string) (*Container, error) {
	var out Container
	return &out, c.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &out)
}

// Events streams container events until ctx ends or the stream breaks; the
// error channel then receives why, and both channels close.
func (c *Client) Events(ctx context.Context) (<-chan Event, <-chan error) {
	events, errs := make(chan Event), make(chan error, 1)
	go func() {
		defer close(events)
		defer close(errs)
		filters := url.QueryEscape(`{"type":["container"]}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+filters, nil)
		if err != nil {
			errs <- err
			return
		}
		hc := *c.hc
		hc.Transport = &http.Transport{DialContext: c.hc.Transport.(*http.Transport).DialContext}
		resp, err := hc.Do(req)
		if err != nil {
			errs <- fmt.Errorf("docker engine at %s: %w", c.Socket, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			errs <- fmt.Errorf("docker engine: events: %s", resp.Status)
			return
		}
		dec := json.NewDecoder(resp.Body)
		for {
			var ev Event
			if err := dec.Decode(&ev); err != nil {
				errs <- fmt.Errorf("docker events: %w", err)
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	return events, errs
}

package route53dns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"

	"github.com/berthproject/berth/internal/ssmfetch"
)

// DefaultEndpoint is Route53's global API endpoint.
const DefaultEndpoint = "https://route53.amazonaws.com"

// Provider changes records of one Route53 hosted zone. Zero values of the
// optional fields take the documented defaults; a Provider is safe for
// concurrent use.
type Provider struct {
	// ZoneID is the hosted zone's id, "Z0123..." or "/hostedzone/Z0123..."
	// (required). The zone name certmagic passes is used only to make
	// record names absolute.
	ZoneID string
	// Endpoint is the API's base URL (default DefaultEndpoint).
	Endpoint string
	// Credentials returns the credentials to sign with (default:
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when
	// set, else the EC2 instance role's, through IMDSv2).
	Credentials func(ctx context.Context) (ssmfetch.Credentials, error)
	// HTTP is the client for the API (default: one with a 30s timeout).
	HTTP *http.Client
	// TTL is the records' TTL when a record has none (default 60s).
	TTL time.Duration
	// PollInterval is the pause between GetChange calls while a change is
	// PENDING (default 2s); WaitTimeout bounds the wait for INSYNC
	// (default 3 minutes).
	PollInterval, WaitTimeout time.Duration
	// Now is the clock requests are signed with (default time.Now).
	Now func() time.Time

	// mu serializes the read-modify-write of record sets in this process
	// (certmagic may solve example.com and *.example.com at once, both at
	// _acme-challenge.example.com).
	mu sync.Mutex
}

func (p *Provider) endpoint() string {
	if p.Endpoint != "" {
		return p.Endpoint
	}
	return DefaultEndpoint
}

func (p *Provider) client() *http.Client {
	if p.HTTP != nil {
		return p.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (p *Provider) credentials(ctx context.Context) (ssmfetch.Credentials, error) {
	if p.Credentials != nil {
		return p.Credentials(ctx)
	}
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return ssmfetch.Credentials{AccessKeyID: id, SecretAccessKey: secret, Token: os.Getenv("AWS_SESSION_TOKEN")}, nil
	}
	c, _, err := ssmfetch.InstanceRole(ctx, nil, "")
	return c, err
}

func (p *Provider) zonePath() (string, error) {
	id := strings.TrimPrefix(p.ZoneID, "/hostedzone/")
	if id == "" || strings.ContainsAny(id, "/?#% ") {
		return "", fmt.Errorf("route53: hosted zone id %q: want Z0123... (the zone's id in Route53)", p.ZoneID)
	}
	return "/2013-04-01/hostedzone/" + id, nil
}

// AppendRecords adds recs to the zone: each value joins its name's and
// type's record set (which is created when missing). It returns once
// Route53 has the change on its name servers.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.modify(ctx, zone, recs, func(have []string, v string) []string {
		if slices.Contains(have, v) {
			return have
		}
		return append(have, v)
	})
}

// DeleteRecords removes recs' values from their record sets (a set left
// empty is deleted). Values that are not there are ignored.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.modify(ctx, zone, recs, func(have []string, v string) []string {
		return slices.DeleteFunc(slices.Clone(have), func(h string) bool { return h == v })
	})
}

// modify applies edit to the record set of each record, one
// ChangeResourceRecordSets call for all, and waits for it.
func (p *Provider) modify(ctx context.Context, zone string, recs []libdns.Record, edit func(have []string, v string) []string) ([]libdns.Record, error) {
	zp, err := p.zonePath()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	type setKey struct{ name, typ string }
	sets, before := map[setKey]*RecordSet{}, map[setKey]*RecordSet{}
	var order []setKey
	var changes []Change
	var done []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		if rr.Type == "" || rr.Data == "" {
			p.mu.Unlock()
			return nil, fmt.Errorf("route53: record %q: want a type and data", rr.Name)
		}
		k := setKey{normalize(libdns.AbsoluteName(rr.Name, zone)), strings.ToUpper(rr.Type)}
		set := sets[k]
		if set == nil {
			cur, err := p.lookup(ctx, zp, k.name, k.typ)
			if err != nil {
				p.mu.Unlock()
				return nil, err
			}
			set = &RecordSet{Name: k.name, Type: k.typ, TTL: p.ttl(rr.TTL)}
			if cur != nil {
				c := *cur
				c.Records = slices.Clone(cur.Records)
				set = &c
			}
			sets[k], before[k] = set, cur
			order = append(order, k)
		}
		set.setValues(edit(set.values(), encodeValue(k.typ, rr.Data)))
		done = append(done, rr)
	}
	for _, k := range order {
		set, cur := sets[k], before[k]
		switch {
		case cur != nil && slices.Equal(cur.values(), set.values()):
			// unchanged
		case len(set.Records) == 0 && cur != nil:
			changes = append(changes, Change{Action: "DELETE", Set: *cur})
		case len(set.Records) > 0:
			changes = append(changes, Change{Action: "UPSERT", Set: *set})
		}
	}
	if len(changes) == 0 {
		p.mu.Unlock()
		return done, nil
	}
	var resp ChangeResponse
	err = p.call(ctx, http.MethodPost, zp+"/rrset", nil,
		&ChangeRequest{Xmlns: xmlns, Comment: "berth ACME DNS-01", Changes: changes}, &resp)
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := p.wait(ctx, resp.Info); err != nil {
		return nil, err
	}
	return done, nil
}

// lookup returns the record set of name and type, or nil.
func (p *Provider) lookup(ctx context.Context, zonePath, name, typ string) (*RecordSet, error) {
	var resp ListResponse
	q := url.Values{"name": {name}, "type": {typ}, "maxitems": {"1"}}
	if err := p.call(ctx, http.MethodGet, zonePath+"/rrset", q, nil, &resp); err != nil {
		return nil, err
	}
	for _, s := range resp.Sets {
		if normalize(s.Name) == name && strings.EqualFold(s.Type, typ) {
			s.Name = name
			return &s, nil
		}
	}
	return nil, nil
}

// errNotInSync is returned when a change stays PENDING past WaitTimeout.
var errNotInSync = errors.New("route53: change not INSYNC in time")

// wait polls GetChange until the change is INSYNC.
func (p *Provider) wait(ctx context.Context, info ChangeInfo) error {
	interval, timeout := p.PollInterval, p.WaitTimeout
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	id := strings.TrimPrefix(info.ID, "/change/")
	if id == "" || strings.ContainsAny(id, "/?#% ") {
		return fmt.Errorf("route53: change id %q in the answer", info.ID)
	}
	deadline := time.Now().Add(timeout)
	for status := info.Status; status != "INSYNC"; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%s still %s after %s)", errNotInSync, id, status, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(interval, max(time.Until(deadline), 0))):
		}
		var resp ChangeResponse
		if err := p.call(ctx, http.MethodGet, "/2013-04-01/change/"+id, nil, nil, &resp); err != nil {
			return err
		}
		status = resp.Info.Status
	}
	return nil
}

func (p *Provider) ttl(d time.Duration) int64 {
	if d <= 0 {
		d = p.TTL
	}
	if d <= 0 {
		d = 60 * time.Second
	}
	return max(int64(d/time.Second), 1)
}

// normalize is a record name as this package compares them: lowercase,
// absolute, with Route53's octal escape of "*" undone.
func normalize(name string) string {
	name = strings.ToLower(strings.ReplaceAll(name, `\052`, "*"))
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// encodeValue is a record's value as Route53 takes it: TXT data quoted,
// in strings of at most 255 characters.
func encodeValue(typ, data string) string {
	if typ != "TXT" {
		return data
	}
	var b strings.Builder
	for len(data) > 0 || b.Len() == 0 {
		n := min(len(data), 255)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(data[:n]) + `"`)
		data = data[n:]
	}
	return b.String()
}

// Interface guards.
var (
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
)

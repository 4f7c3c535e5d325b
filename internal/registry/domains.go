package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/spec"
)

// ErrDomainTaken is returned (as a *DomainTakenError) when an apply claims
// a domain that another app owns.
var ErrDomainTaken = errors.New("domain belongs to another app")

// DomainTakenError names a domain an apply claimed and the app that owns
// it.
type DomainTakenError struct {
	Domain string // the host (or *.wildcard)
	Owner  string // the app it belongs to
	App    string // the app that claimed it
}

func (e *DomainTakenError) Error() string {
	return fmt.Sprintf("domain %s belongs to app %s, not %s", e.Domain, e.Owner, e.App)
}

// Unwrap makes errors.Is(err, ErrDomainTaken) hold.
func (e *DomainTakenError) Unwrap() error { return ErrDomainTaken }

// ApplyOptions change how Apply treats domains. The zero value refuses
// domains of other apps.
type ApplyOptions struct {
	// TakeOver moves a domain another app owns to the applied app
	// (default false: the apply fails with a *DomainTakenError).
	TakeOver bool
}

// Applied is what an Apply changed in the domains, each list sorted.
type Applied struct {
	Added   []string          `json:"added,omitempty"`   // domains new to the app
	Removed []string          `json:"removed,omitempty"` // domains that left its spec
	Taken   map[string]string `json:"taken,omitempty"`   // domain → the app it was taken from (TakeOver)
}

// domainRecord is one domains/<host> key as read.
type domainRecord struct {
	host  string
	owner string // "" if the value does not decode
	rev   int64  // mod revision
}

// appDomains decodes the domains/ keys by key.
func appDomains(k Keys, kvs []*mvccpb.KeyValue) map[string]domainRecord {
	out := make(map[string]domainRecord, len(kvs))
	for _, kv := range kvs {
		pk := k.Parse(string(kv.Key))
		if pk.Kind != KindDomain {
			continue
		}
		d := domainRecord{host: pk.Name, rev: kv.ModRevision}
		if v, err := decode[Domain](kv.Value); err == nil {
			d.owner = v.App
		}
		out[string(kv.Key)] = d
	}
	return out
}

// maxApplyTries bounds the retries of a transaction whose guards failed
// because another writer changed a key meanwhile.
const maxApplyTries = 10

// Apply writes an app's spec and makes its domains those of the spec, in
// one transaction: domains new to the spec are added, domains that left it
// are deleted (routers stop serving them), and a domain another app owns
// is refused with a *DomainTakenError unless opts.TakeOver. The
// transaction is guarded by the mod revision of every domain it touches,
// so of two applies racing for one domain exactly one wins; the other
// reads again and is refused (or, with TakeOver, takes it after). An
// app's status marked by a delete (expected deleted) is removed in the
// same transaction: the app is deployed again. Apply checks the schema
// version first.
func Apply(ctx context.Context, kv clientv3.KV, k Keys, app *spec.App, opts ApplyOptions) (*Applied, error) {
	if err := EnsureSchema(ctx, kv, k); err != nil {
		return nil, err
	}
	key, err := k.App(app.Name)
	if err != nil {
		return nil, err
	}
	statusKey, _ := k.Status(app.Name)
	val, err := json.Marshal(app)
	if err != nil {
		return nil, err
	}
	want := map[string]string{} // domain key → host
	for _, d := range app.Domains {
		dk, err := k.Domain(d)
		if err != nil {
			return nil, err
		}
		want[dk] = d
	}
	dom, _ := json.Marshal(Domain{App: app.Name})
	for range maxApplyTries {
		resp, err := kv.Txn(ctx).Then(clientv3.OpGet(k.domainsPrefix(), clientv3.WithPrefix()), clientv3.OpGet(statusKey)).Commit()
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", app.Name, err)
		}
		have := appDomains(k, resp.Responses[0].GetResponseRange().Kvs)
		res := &Applied{}
		var cmps []clientv3.Cmp
		ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
		for _, dk := range slices.Sorted(maps.Keys(want)) {
			cur, ok := have[dk]
			if ok && cur.owner == app.Name {
				continue
			}
			if ok && cur.owner != "" {
				if !opts.TakeOver {
					return nil, &DomainTakenError{Domain: want[dk], Owner: cur.owner, App: app.Name}
				}
				if res.Taken == nil {
					res.Taken = map[string]string{}
				}
				res.Taken[want[dk]] = cur.owner
			} else {
				res.Added = append(res.Added, want[dk])
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(dk), "=", cur.rev)) // 0: still absent
			ops = append(ops, clientv3.OpPut(dk, string(dom)))
		}
		for _, dk := range slices.Sorted(maps.Keys(have)) {
			if cur := have[dk]; cur.owner == app.Name && want[dk] == "" {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(dk), "=", cur.rev))
				ops = append(ops, clientv3.OpDelete(dk))
				res.Removed = append(res.Removed, cur.host)
			}
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if st, err := decode[Status](kvs[0].Value); err == nil && st.Expected == StatusDeleted {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(statusKey), "=", kvs[0].ModRevision))
				ops = append(ops, clientv3.OpDelete(statusKey))
			}
		}
		tx, err := kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", app.Name, err)
		}
		if tx.Succeeded {
			return res, nil
		}
	}
	return nil, fmt.Errorf("apply %s: its domains were changed by other writers %d times in a row; try again", app.Name, maxApplyTries)
}

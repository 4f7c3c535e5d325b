package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/spec"
)

// StatusDeleted is the Status.Expected of an app that berth delete is
// removing (MarkDeleted): nothing wakes, starts or passivates it, and its
// records go once its units are gone (PurgeApp).
const StatusDeleted = "deleted"

// ErrNotFound is returned (wrapped) by MarkDeleted for an app that has no
// record at all.
var ErrNotFound = errors.New("not found")

// ErrReapplied is returned (wrapped) by PurgeApp when the app's spec came
// back (berth apply) while it was being deleted; its records are kept.
var ErrReapplied = errors.New("the app was applied again while it was being deleted")

// AppRecords are an app's records in etcd, read at one revision.
type AppRecords struct {
	App          string
	Rev          int64       // the revision read
	Spec         *spec.App   // nil if none, or if it does not decode
	Status       *Status     // nil if none, or if it does not decode
	Domains      []string    // hosts whose record names the app, sorted
	Instances    []*Instance // the instance records that decode, by id
	InstanceKeys int         // instance records, decodable or not
	AccessKeys   int         // access records (one per router)

	specRev, statusRev int64
	domainRevs         map[string]int64 // domain key → mod revision
}

// Found reports whether the app has any record.
func (r *AppRecords) Found() bool {
	return r.specRev != 0 || r.statusRev != 0 || len(r.Domains) > 0 || r.InstanceKeys > 0 || r.AccessKeys > 0
}

// appKeys are the keys and prefixes of one app's records.
type appKeys struct {
	spec, status, instances, access string
	rollout, releases               string
}

func (k Keys) appKeys(app string) (appKeys, error) {
	spec, err := k.App(app)
	if err != nil {
		return appKeys{}, err
	}
	status, _ := k.Status(app)
	instances, _ := k.InstancesOf(app)
	access, _ := k.AccessOf(app)
	rollout, _ := k.RolloutKey(app)
	releases, _ := k.Releases(app)
	return appKeys{spec: spec, status: status, instances: instances, access: access, rollout: rollout, releases: releases}, nil
}

// ReadApp reads every record of an app in one transaction: spec, status,
// the domains naming it, its instances and access records.
func ReadApp(ctx context.Context, kv clientv3.KV, k Keys, app string) (*AppRecords, error) {
	ak, err := k.appKeys(app)
	if err != nil {
		return nil, err
	}
	resp, err := kv.Txn(ctx).Then(
		clientv3.OpGet(ak.spec),
		clientv3.OpGet(ak.status),
		clientv3.OpGet(k.domainsPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(ak.instances, clientv3.WithPrefix()),
		clientv3.OpGet(ak.access, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read app %s: %w", app, err)
	}
	r := &AppRecords{App: app, Rev: resp.Header.Revision, domainRevs: map[string]int64{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		r.specRev = kvs[0].ModRevision
		var a spec.App
		if json.Unmarshal(kvs[0].Value, &a) == nil {
			r.Spec = &a
		}
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		r.statusRev = kvs[0].ModRevision
		r.Status, _ = decode[Status](kvs[0].Value)
	}
	for dk, d := range appDomains(k, resp.Responses[2].GetResponseRange().Kvs) {
		if d.owner == app {
			r.Domains = append(r.Domains, d.host)
			r.domainRevs[dk] = d.rev
		}
	}
	sort.Strings(r.Domains)
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		r.InstanceKeys++
		pk := k.Parse(string(kv.Key))
		if in, err := decode[Instance](kv.Value); err == nil && pk.Kind == KindInstance {
			in.App, in.ID = pk.App, pk.Name
			r.Instances = append(r.Instances, in)
		}
	}
	sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i].ID < r.Instances[j].ID })
	r.AccessKeys = int(resp.Responses[4].GetResponseRange().Count)
	return r, nil
}

// MarkDeleted is the first step of deleting an app. In one transaction,
// guarded by the mod revisions it read (and retried when another writer
// came first), it deletes the app's spec and the domains naming it, and
// sets its status to current stopping, expected deleted. From then on
// routers serve none of its domains, and nothing starts, wakes or
// passivates it: node agents, berth up and passivation follow specs
// only, the router's wake and the hooks leave a deleted app's status
// alone. Its units are still to be stopped and its remaining records
// purged (PurgeApp). It returns the records as they were before, and
// ErrNotFound (wrapped) when the app has none. Marking an app marked
// before (an interrupted delete) marks it again.
func MarkDeleted(ctx context.Context, kv clientv3.KV, k Keys, app string) (*AppRecords, error) {
	ak, err := k.appKeys(app)
	if err != nil {
		return nil, err
	}
	for range maxApplyTries {
		r, err := ReadApp(ctx, kv, k, app)
		if err != nil {
			return nil, err
		}
		if !r.Found() {
			return nil, fmt.Errorf("app %s: %w", app, ErrNotFound)
		}
		mark := Status{Current: StatusStopping, Expected: StatusDeleted, Since: time.Now().UnixMilli(), Message: "being deleted"}
		if r.Status != nil {
			mark.Units = r.Status.Units
			if r.Status.Expected == StatusDeleted && r.Status.Since != 0 {
				mark.Since = r.Status.Since
			}
		}
		val, _ := json.Marshal(mark)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(ak.spec), "=", r.specRev),
			clientv3.Compare(clientv3.ModRevision(ak.status), "=", r.statusRev),
		}
		// A running deploy ends with the spec: no deployer starts anything more.
		ops := []clientv3.Op{clientv3.OpDelete(ak.spec), clientv3.OpPut(ak.status, string(val)), clientv3.OpDelete(ak.rollout)}
		c, o := r.domainOps()
		tx, err := kv.Txn(ctx).If(append(cmps, c...)...).Then(append(ops, o...)...).Commit()
		if err != nil {
			return nil, fmt.Errorf("mark %s deleted: %w", app, err)
		}
		if tx.Succeeded {
			return r, nil
		}
	}
	return nil, fmt.Errorf("mark %s deleted: its records were changed by other writers %d times in a row; try again", app, maxApplyTries)
}

// domainOps are the guards and deletes of the domains naming the app.
func (r *AppRecords) domainOps() ([]clientv3.Cmp, []clientv3.Op) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, dk := range slices.Sorted(maps.Keys(r.domainRevs)) {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(dk), "=", r.domainRevs[dk]))
		ops = append(ops, clientv3.OpDelete(dk))
	}
	return cmps, ops
}

// Purged counts what PurgeApp deleted.
type Purged struct {
	Status    bool     `json:"status"`              // the status record
	Domains   []string `json:"domains,omitempty"`   // domains that named the app still
	Instances int64    `json:"instances"`           // instance records left by units that did not deregister
	Access    int64    `json:"access"`              // access records (one per router)
	Releases  int64    `json:"releases,omitempty"`  // releases (berth history)
	SkyDNS    int64    `json:"skydns,omitempty"`    // SkyDNS mirror records
	SkyDNSKey string   `json:"skydnsKey,omitempty"` // the prefix they were under
}

// PurgeApp is the last step of deleting an app, once its units are
// stopped: it deletes the status, every instance and access record, any
// domain still naming the app and, with skydnsZone, the SkyDNS mirror of
// its instances, in one transaction guarded by the spec's absence. When
// the spec is back (applied again meanwhile) nothing is deleted and the
// error wraps ErrReapplied.
func PurgeApp(ctx context.Context, kv clientv3.KV, k Keys, app, skydnsZone string) (*Purged, error) {
	ak, err := k.appKeys(app)
	if err != nil {
		return nil, err
	}
	sky := ""
	if skydnsZone != "" {
		if sky, err = SkyDNSAppPrefix(skydnsZone, app); err != nil {
			return nil, err
		}
	}
	for range maxApplyTries {
		r, err := ReadApp(ctx, kv, k, app)
		if err != nil {
			return nil, err
		}
		cmps, ops := r.domainOps()
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ak.spec), "=", 0))
		ops = append(ops, clientv3.OpDelete(ak.status), clientv3.OpDelete(ak.instances, clientv3.WithPrefix()),
			clientv3.OpDelete(ak.access, clientv3.WithPrefix()))
		if sky != "" {
			ops = append(ops, clientv3.OpDelete(sky, clientv3.WithPrefix()))
		}
		ops = append(ops, clientv3.OpDelete(ak.releases, clientv3.WithPrefix()))
		tx, err := kv.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(ak.spec, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return nil, fmt.Errorf("purge %s: %w", app, err)
		}
		if !tx.Succeeded {
			if tx.Responses[0].GetResponseRange().Count > 0 {
				return nil, fmt.Errorf("app %s: %w; its records are kept", app, ErrReapplied)
			}
			continue // a domain changed meanwhile: read again
		}
		n := len(r.domainRevs)
		del := func(i int) int64 { return tx.Responses[n+i].GetResponseDeleteRange().Deleted }
		p := &Purged{Domains: r.Domains, Status: del(0) > 0, Instances: del(1), Access: del(2)}
		if sky != "" {
			p.SkyDNS, p.SkyDNSKey = del(3), sky
		}
		p.Releases = del(len(ops) - n - 1)
		return p, nil
	}
	return nil, fmt.Errorf("purge %s: its domains were changed by other writers %d times in a row; try again", app, maxApplyTries)
}

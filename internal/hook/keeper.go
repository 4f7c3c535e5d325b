package hook

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// Keep writes rec on a lease of ttl and keeps it alive until ctx ends (then
// revokes it) or until the record is deleted by someone else (post-stop),
// re-writing it on a new lease when the lease is lost. ready is called once
// the record is written. This is the interim owner of instance leases
// until the node agent takes them over.
//
// With skydnsZone set, the record is also mirrored in the SkyDNS layout on
// the same lease, one key per port (see registry.SkyDNSKVs).
func (h *Hooks) Keep(ctx context.Context, cli *clientv3.Client, rec *registry.Instance, ttl time.Duration, skydnsZone string, ready func()) error {
	key, val, mirror, err := registry.InstanceKVs(h.Keys, rec, skydnsZone)
	if err != nil {
		return err
	}
	owner := registry.NewLeaseOwner(cli, cli, ttl, h.Log)
	if err := owner.Put(ctx, key, val); err != nil {
		return err
	}
	for mk, mv := range mirror {
		if err := owner.Put(ctx, mk, mv); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-owner.Done() }()
	go owner.Run(ctx)
	select {
	case <-owner.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	ready()
	for ctx.Err() == nil {
		if h.watchForStop(ctx, cli, key) {
			h.Log.WithField("key", key).Info("instance record removed by its unit; keeper exits")
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// watchForStop watches key and reports true when it is deleted while the
// lease it was on is still alive: an explicit delete (post-stop), not an
// expiry (after which the lease owner re-writes the record). It returns
// false when the watch ends for any other reason.
func (h *Hooks) watchForStop(ctx context.Context, cli *clientv3.Client, key string) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range cli.Watch(wctx, key, clientv3.WithPrevKV()) {
		if resp.Err() != nil {
			return false
		}
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypeDelete || ev.PrevKv == nil || ev.PrevKv.Lease == 0 {
				continue
			}
			ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(ev.PrevKv.Lease))
			if err == nil && ttl.TTL > 0 {
				return true
			}
		}
	}
	return false
}

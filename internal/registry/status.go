package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrConflict is returned when a status transition lost a race: the status
// was not what the caller expected.
var ErrConflict = errors.New("status changed concurrently")

// Transition changes an app's status in one transaction: it succeeds only
// if the stored status is still at revision oldRev (0: no status stored),
// so exactly one of several racing callers wins; the others get
// ErrConflict and the current status.
func Transition(ctx context.Context, kv clientv3.KV, k Keys, app string, oldRev int64, next Status) (*Status, error) {
	key, err := k.Status(app)
	if err != nil {
		return nil, err
	}
	if next.Since == 0 {
		next.Since = time.Now().UnixMilli()
	}
	val, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", oldRev)
	resp, err := kv.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", app, err)
	}
	if resp.Succeeded {
		return &next, nil
	}
	var cur *Status
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		cur, _ = decode[Status](kvs[0].Value)
	}
	return cur, ErrConflict
}

// GetStatus reads an app's status and its revision; nil and 0 if none is
// stored. An undecodable status reads as nil with its revision, so that a
// transition can overwrite it.
func GetStatus(ctx context.Context, kv clientv3.KV, k Keys, app string) (*Status, int64, error) {
	key, err := k.Status(app)
	if err != nil {
		return nil, 0, err
	}
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read status of %s: %w", app, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	st, err := decode[Status](resp.Kvs[0].Value)
	if err != nil {
		return nil, resp.Kvs[0].ModRevision, nil
	}
	return st, resp.Kvs[0].ModRevision, nil
}

// Update applies change to an app's status with compare-and-swap, retrying
// on conflict (at most 10 times); change returns false to leave it as is.
func Update(ctx context.Context, kv clientv3.KV, k Keys, app string, change func(cur *Status) (Status, bool)) (*Status, error) {
	for range 10 {
		cur, rev, err := GetStatus(ctx, kv, k, app)
		if err != nil {
			return nil, err
		}
		next, ok := change(cur)
		if !ok {
			return cur, nil
		}
		st, err := Transition(ctx, kv, k, app, rev, next)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return st, err
	}
	return nil, fmt.Errorf("status %s: %w (gave up after 10 tries)", app, ErrConflict)
}

// Wake moves an app to expected=started (current starting) unless it is
// started already or being deleted, in a compare-and-swap; it reports
// whether this call's transaction is the one that committed, so that of
// racing wakers (routers, the API) exactly one wins.
func Wake(ctx context.Context, kv clientv3.KV, k Keys, app string) (bool, error) {
	won := false
	// Update may call change several times (compare-and-swap retries); the
	// last call tells whether our transaction is the one that committed.
	_, err := Update(ctx, kv, k, app, func(cur *Status) (Status, bool) {
		won = false
		// Nothing to wake when it is started already, or deleted: its
		// status gone or marked by berth delete. A wake must not bring a
		// deleted app's status back.
		if cur == nil || cur.Expected == StatusStarted || cur.Expected == StatusDeleted {
			return Status{}, false
		}
		won = true
		return Status{Current: StatusStarting, Expected: StatusStarted, Units: cur.Units}, true
	})
	if err != nil {
		return false, err
	}
	return won, nil
}

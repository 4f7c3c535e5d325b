package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// AuditRecord is the value of <root>/v1/audit/<ms>-<request>-<n>: one
// committed transaction of an API request.
type AuditRecord struct {
	Who     string `json:"who"`     // token name
	What    string `json:"what"`    // "POST /v1/apps/shop/scale"
	Route   string `json:"route"`   // "POST /v1/apps/{app}/scale"
	When    string `json:"when"`    // RFC 3339, UTC, milliseconds
	Request string `json:"request"` // request id (X-Request-Id of the response)
	Remote  string `json:"remote"`  // client address
	Ops     int    `json:"ops"`     // writes in the transaction
}

// auditor owns the lease the audit records are written on: a record lives
// between Retention and 1.1 × Retention, so the log does not grow forever.
// One lease serves every record of a tenth of the retention.
type auditor struct {
	lease     clientv3.Lease
	retention time.Duration

	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
}

// leaseID returns the current audit lease, granting a new one when the
// current one is older than a tenth of the retention.
func (a *auditor) leaseID(ctx context.Context) (clientv3.LeaseID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.id != 0 && time.Since(a.granted) < a.retention/10 {
		return a.id, nil
	}
	ttl := int64(a.retention.Seconds() * 1.1)
	resp, err := a.lease.Grant(ctx, max(ttl, 1))
	if err != nil {
		return 0, fmt.Errorf("grant the audit lease: %w", err)
	}
	a.id, a.granted = resp.ID, time.Now()
	return a.id, nil
}

// auditKV is the KV a mutation runs on: every write becomes a transaction
// that also puts an audit record (on the audit lease), so a change and its
// record commit together or not at all. Reads pass through.
type auditKV struct {
	clientv3.KV
	keys registry.Keys
	a    *auditor
	rec  AuditRecord
	n    atomic.Int32
}

// op returns the audit put for a transaction with writes writes.
func (k *auditKV) op(ctx context.Context, writes int) (clientv3.Op, error) {
	lease, err := k.a.leaseID(ctx)
	if err != nil {
		return clientv3.Op{}, err
	}
	now := time.Now()
	key, err := k.keys.Audit(now.UnixMilli(), k.rec.Request, int(k.n.Add(1)))
	if err != nil {
		return clientv3.Op{}, err
	}
	rec := k.rec
	rec.When, rec.Ops = now.UTC().Format("2006-01-02T15:04:05.000Z07:00"), writes
	b, _ := json.Marshal(rec)
	return clientv3.OpPut(key, string(b), clientv3.WithLease(lease)), nil
}

func writes(ops []clientv3.Op) int {
	n := 0
	for _, op := range ops {
		if op.IsPut() || op.IsDelete() || op.IsTxn() {
			n++
		}
	}
	return n
}

// Txn implements clientv3.KV.
func (k *auditKV) Txn(ctx context.Context) clientv3.Txn {
	return &auditTxn{ctx: ctx, kv: k, txn: k.KV.Txn(ctx)}
}

// Put implements clientv3.KV as a transaction with the audit record.
func (k *auditKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	resp, err := k.Txn(ctx).Then(clientv3.OpPut(key, val, opts...)).Commit()
	if err != nil {
		return nil, err
	}
	out := (*clientv3.PutResponse)(resp.Responses[0].GetResponsePut())
	out.Header = resp.Header
	return out, nil
}

// Delete implements clientv3.KV as a transaction with the audit record.
func (k *auditKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	resp, err := k.Txn(ctx).Then(clientv3.OpDelete(key, opts...)).Commit()
	if err != nil {
		return nil, err
	}
	out := (*clientv3.DeleteResponse)(resp.Responses[0].GetResponseDeleteRange())
	out.Header = resp.Header
	return out, nil
}

// Do implements clientv3.KV; a write goes through Put or Delete.
func (k *auditKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if op.IsPut() || op.IsDelete() || op.IsTxn() {
		resp, err := k.Txn(ctx).Then(op).Commit()
		if err != nil {
			return clientv3.OpResponse{}, err
		}
		return resp.OpResponse(), nil
	}
	return k.KV.Do(ctx, op)
}

// auditTxn adds the audit put to each branch that writes.
type auditTxn struct {
	ctx context.Context
	kv  *auditKV
	txn clientv3.Txn
	err error
}

func (t *auditTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.txn = t.txn.If(cs...)
	return t
}

func (t *auditTxn) branch(ops []clientv3.Op) []clientv3.Op {
	n := writes(ops)
	if n == 0 {
		return ops
	}
	op, err := t.kv.op(t.ctx, n)
	if err != nil {
		t.err = err
		return ops
	}
	return append(ops[:len(ops):len(ops)], op)
}

func (t *auditTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.txn = t.txn.Then(t.branch(ops)...)
	return t
}

func (t *auditTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.txn = t.txn.Else(t.branch(ops)...)
	return t
}

// Commit commits, unless the audit record could not be prepared: no
// change goes unrecorded.
func (t *auditTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.err != nil {
		return nil, t.err
	}
	return t.txn.Commit()
}

// ListAudit returns the newest audit records, newest first (at most
// limit).
func ListAudit(ctx context.Context, kv clientv3.KV, k registry.Keys, limit int64) ([]AuditRecord, error) {
	resp, err := kv.Get(ctx, k.AuditPrefix(), clientv3.WithPrefix(), clientv3.WithLimit(limit),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	out := []AuditRecord{}
	for _, kv := range resp.Kvs {
		var r AuditRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// Interface guard
var _ clientv3.KV = (*auditKV)(nil)

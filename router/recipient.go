package router

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// recipientRetry bounds the wait between two attempts to publish the
// recipient after an etcd error.
const recipientRetry = 30 * time.Second

// RunCertRecipient publishes the routers' certificate recipient (the
// public key derived from Config.RouterKey) at /berth/v1/acme/cert-recipient
// for berth cert put to seal to, until ctx ends: written if absent, left
// alone if equal. If another recipient is published, the routers disagree
// on their key: this router logs an error, counts
// berth_router_cert_recipient_conflicts_total and overwrites nothing. It
// publishes again whenever the key changes (deleted, rewritten), and
// retries with a growing backoff after an etcd error. Without a router
// key it returns nil at once.
func (r *Router) RunCertRecipient(ctx context.Context, kv clientv3.KV, w clientv3.Watcher, k registry.Keys) error {
	if r.certs.opener == nil {
		return nil
	}
	rcpt := r.certs.opener.Recipient()
	key := k.CertRecipient()
	log := r.log.WithField("key", key).WithField("recipient", rcpt.Fingerprint())
	backoff := 500 * time.Millisecond
	for {
		created, rev, err := registry.PublishCertRecipient(ctx, kv, k, rcpt)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, registry.ErrCertRecipientDiffers):
			r.metrics.recipientConflicts.Inc()
			r.metrics.recipientConflict.Set(1)
			log.WithError(err).Error("routers disagree on --router-key-file: this router cannot open certificates sealed to the published recipient")
		case err != nil:
			log.WithError(err).Warn("cannot publish the certificate recipient; retrying")
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, recipientRetry)
			continue
		case created:
			r.metrics.recipientConflict.Set(0)
			log.Info("published the certificate recipient berth cert put seals to")
		default:
			r.metrics.recipientConflict.Set(0)
			log.Info("the certificate recipient published is this router's")
		}
		backoff = 500 * time.Millisecond
		if !waitKeyChange(ctx, w, key, rev) {
			return nil
		}
	}
}

// waitKeyChange returns when key changes after rev (true), its watch
// fails (true, after a pause: the caller reads it again) or ctx ends
// (false).
func waitKeyChange(ctx context.Context, w clientv3.Watcher, key string, rev int64) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range w.Watch(wctx, key, clientv3.WithRev(rev+1)) {
		if resp.Err() != nil {
			break
		}
		if len(resp.Events) > 0 {
			return true
		}
	}
	if ctx.Err() != nil {
		return false
	}
	return sleepCtx(ctx, time.Second)
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

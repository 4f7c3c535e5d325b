// Package leader runs one of several candidates at a time through an etcd
// election (concurrency.Election): berth fleet's scheduler and the
// deployer of a cluster.
package leader

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Config names a candidate.
type Config struct {
	Client *clientv3.Client
	Prefix string // the election's key prefix
	ID     string // this candidate (its node id)
	// TTL is the session's lease (default 5s): how long a dead leader
	// holds the role.
	TTL  time.Duration
	Role string // for logs: "scheduler", "deployer"
	Log  logrus.FieldLogger
}

// Lead is the leader's work: it returns when its term ends (ctx done, or
// the session lost: sess.Done()).
type Lead func(ctx context.Context, sess *concurrency.Session, el *concurrency.Election) error

// Run campaigns and runs lead while leading, again after every lost term,
// until ctx ends.
func Run(ctx context.Context, c Config, lead Lead) error {
	ttl := 5
	if c.TTL > 0 {
		ttl = int(max(c.TTL, time.Second) / time.Second)
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		sess, err := concurrency.NewSession(c.Client, concurrency.WithContext(ctx), concurrency.WithTTL(ttl))
		if err != nil {
			c.Log.WithError(err).Warn(c.Role + ": no election session")
			continue
		}
		el := concurrency.NewElection(sess, c.Prefix)
		if err := el.Campaign(ctx, c.ID); err != nil {
			sess.Close()
			if ctx.Err() == nil {
				c.Log.WithError(err).Warn(c.Role + ": campaign")
			}
			continue
		}
		c.Log.WithField("id", c.ID).Info(c.Role + ": leading")
		backoff = 0
		err = lead(ctx, sess, el)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		el.Resign(rctx)
		cancel()
		sess.Close()
		if ctx.Err() == nil {
			c.Log.WithError(err).Warn(c.Role + ": no longer leading")
		}
	}
	return ctx.Err()
}

package router

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/berthproject/berth/internal/spec"
)

// Selector picks an upstream among candidates (never empty) or returns nil.
type Selector interface {
	Select(candidates []*Upstream) *Upstream
}

// RoundRobin cycles through the candidates.
type RoundRobin struct{ next atomic.Uint64 }

// Select implements Selector.
func (r *RoundRobin) Select(c []*Upstream) *Upstream {
	return c[(r.next.Add(1)-1)%uint64(len(c))]
}

// LeastConn picks the candidate with the fewest requests in flight,
// breaking ties at random.
type LeastConn struct{}

// Select implements Selector.
func (LeastConn) Select(c []*Upstream) *Upstream {
	var best *Upstream
	ties := 0
	for _, u := range c {
		switch n := u.Inflight(); {
		case best == nil || n < best.Inflight():
			best, ties = u, 1
		case n == best.Inflight():
			ties++
			if rand.IntN(ties) == 0 {
				best = u
			}
		}
	}
	return best
}

// P2C is the power of two choices: two random candidates, the less loaded
// one wins.
type P2C struct{}

// Select implements Selector.
func (P2C) Select(c []*Upstream) *Upstream {
	if len(c) == 1 {
		return c[0]
	}
	i := rand.IntN(len(c))
	j := rand.IntN(len(c) - 1)
	if j >= i {
		j++
	}
	if c[j].Inflight() < c[i].Inflight() {
		return c[j]
	}
	return c[i]
}

// newSelector returns the selector of a spec policy (round robin default).
func newSelector(policy string) Selector {
	switch policy {
	case spec.PolicyLeastConn:
		return LeastConn{}
	case spec.PolicyP2C:
		return P2C{}
	}
	return &RoundRobin{}
}

// Interface guards
var (
	_ Selector = (*RoundRobin)(nil)
	_ Selector = LeastConn{}
	_ Selector = P2C{}
)

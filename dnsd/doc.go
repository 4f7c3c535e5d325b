// Package dnsd is berth's authoritative DNS server for service names, built
// on miekg/dns. It answers from an in-memory view rebuilt from the
// registry's watch cache and swapped atomically: never an etcd round trip
// per query.
//
// Names under the zone (default "berth."):
//
//	<app>.service.<zone>                 A, AAAA, SRV  live instances (shuffled)
//	<tag>.<app>.service.<zone>           A, AAAA, SRV  filtered by tag
//	_<app>._tcp.service.<zone>           SRV           RFC 2782 form
//	_<port>._<proto>.<app>.service.<zone> SRV          by port name
//	<app>-<id>.<node>.node.<zone>        A, AAAA       SRV targets (one instance)
//	<node>.node.<zone>                   A, AAAA       nodes
//	<zone>                               SOA, NS
//
// Unknown names get NXDOMAIN with the SOA, known names without the type
// NODATA; a view that never synced or is staler than the bound gives
// SERVFAIL; names outside the zone are REFUSED unless forwarding is
// configured for the client's network.
package dnsd

# Captured the answers in this directory from a real etcd 3.4.23 (its JSON gateway, mutual TLS):
# ETCD=https://127.0.0.1:PORT CERTS="--cacert ca.crt --cert client.crt --key client.key" sh capture.sh
# They seed tests/fuzz/corpus/etcd_json (tests/fuzz/seeds.py); the name's first letter selects the parser.
set -e
O=$(dirname "$0")
C="curl -s $CERTS $ETCD"
c() { $C$2 -d "$3" > $O/$1.json; echo >> $O/$1.json; }
c b-put /v3/kv/put '{"key":"L2h2L2E=","value":"MQ=="}'
L=$($C/v3/lease/grant -d '{"TTL":60}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["ID"])')
c b-put-lease /v3/kv/put "{\"key\":\"L2h2L2I=\",\"value\":\"AP8=\",\"lease\":\"$L\"}"
c a-range /v3/kv/range '{"key":"L2h2L2E="}'
c a-range-prefix /v3/kv/range '{"key":"L2h2Lw==","range_end":"L2h2MA=="}'
c a-range-empty /v3/kv/range '{"key":"bm9uZQ=="}'
c c-deleterange /v3/kv/deleterange '{"key":"L2h2L2E="}'
c c-deleterange-none /v3/kv/deleterange '{"key":"bm9uZQ=="}'
c d-txn-success /v3/kv/txn '{"compare":[{"key":"L2h2L2M=","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":{"key":"L2h2L2M=","value":"eA=="}},{"request_range":{"key":"L2h2Lw==","range_end":"L2h2MA=="}},{"request_delete_range":{"key":"bm9uZQ=="}}]}'
c d-txn-failure /v3/kv/txn '{"compare":[{"key":"L2h2L2M=","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":{"key":"L2h2L2M=","value":"eA=="}}],"failure":[{"request_range":{"key":"L2h2L2M="}}]}'
c e-lease-grant /v3/lease/grant '{"TTL":30}'
c f-keepalive /v3/lease/keepalive "{\"ID\":\"$L\"}"
c f-keepalive-gone /v3/lease/keepalive '{"ID":"1"}'
c k-lease-not-found /v3/lease/revoke '{"ID":"1"}'
c k-duplicate-key /v3/kv/txn '{"compare":[],"success":[{"request_put":{"key":"YQ==","value":"eA=="}},{"request_put":{"key":"YQ==","value":"eA=="}}]}'
c k-future-revision /v3/kv/compaction '{"revision":"999999"}'
c k-not-learner /v3/cluster/member/promote '{"ID":"13668033151171901709"}'
c k-member-not-found /v3/cluster/member/remove '{"ID":"1"}'
c g-member-list /v3/cluster/member/list '{}'
c h-member-add /v3/cluster/member/add '{"peerURLs":["http://127.0.0.1:23998"],"isLearner":true}'
ID=$(python3 -c 'import json;print(json.load(open("'$O'/h-member-add.json"))["member"]["ID"])')
$C/v3/cluster/member/remove -d "{\"ID\":\"$ID\"}" > /dev/null
c i-status /v3/maintenance/status '{}'
R=$($C/v3/kv/put -d '{"key":"L2h2L3c=","value":"MQ=="}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["header"]["revision"])')
(timeout 2 curl -sN $CERTS $ETCD/v3/watch -d "{\"create_request\":{\"key\":\"L2h2Lw==\",\"range_end\":\"L2h2MA==\",\"start_revision\":\"$R\"}}" > $O/j-watch.json || true) &
sleep 0.5
$C/v3/kv/txn -d '{"compare":[],"success":[{"request_put":{"key":"L2h2L3c=","value":"Mg=="}},{"request_put":{"key":"L2h2L3g=","value":"Mw=="}}]}' > /dev/null
$C/v3/kv/deleterange -d '{"key":"L2h2Lw==","range_end":"L2h2MA=="}' > /dev/null
wait
c l-compaction /v3/kv/compaction "{\"revision\":\"$R\"}"
timeout 2 curl -sN $CERTS $ETCD/v3/watch -d '{"create_request":{"key":"L2h2Lw==","range_end":"L2h2MA==","start_revision":"2"}}' > $O/j-watch-compacted.json || true

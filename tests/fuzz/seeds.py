# Writes the seed corpora of tests/fuzz/corpus/<target>/ (docs/fuzzing.md) from the tests' own
# inputs (JSON raw strings of tests/unit and tests/integration, tests/data, etc/hvd.toml), typical
# HTTP requests and the known-bad inputs of issue 12. Seeds are named seed-<sha1 prefix>; files
# of other names (crash-* reproducers) are left alone. Run: python3 tests/fuzz/seeds.py
import json, re, os, glob, hashlib
root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
out = root + '/tests/fuzz/corpus'
lit = re.compile(r'R"\((.*?)\)"', re.S)
objs = []
for f in sorted(glob.glob(root + '/tests/unit/*.cpp') + glob.glob(root + '/tests/integration/*.cpp')):
    src = open(f).read()
    ms = list(lit.finditer(src))
    i = 0
    while i < len(ms):
        t = ms[i].group(1)
        try:
            objs.append(json.loads(t)); i += 1; continue
        except Exception:
            pass
        # "A" + name + "B": join with a name
        joined = t; j = i
        ok = False
        while j + 1 < len(ms) and re.fullmatch(r'\s*\+\s*[\w.:()\[\]"]+\s*\+\s*', src[ms[j].end():ms[j+1].start()]):
            joined += 'it-fuzz-1' + ms[j+1].group(1); j += 1
            try:
                objs.append(json.loads(joined)); ok = True; break
            except Exception:
                pass
        i = j + 1 if ok else i + 1
for f in sorted(glob.glob(root + '/tests/data/*.json') + glob.glob(root + '/tests/data/ct/*.json')):
    objs.append(json.load(open(f)))
print(len(objs), 'objects')

def classify(o):
    if not isinstance(o, dict): return [('vm', 'a'), ('storage', 'a')]
    k = set(o)
    r = []
    if k & {'template', 'rootfs', 'unprivileged'}: r.append(('ct', 'a'))
    if 'name' in k and k & {'cpus', 'memory', 'disks', 'nics', 'firmware', 'machine', 'kernel', 'cdrom'} and not k & {'template', 'rootfs'}: r.append(('vm', 'a'))
    if isinstance(o.get('disks'), list) and any(isinstance(d, dict) and 'source' in d for d in o['disks']): r.append(('vm', 'i'))
    if 'name' not in k and k & {'cpus', 'memory', 'description', 'tags'}: r += [('vm', 'b'), ('ct', 'b')]
    if k & {'bus', 'provision', 'mode', 'cache', 'discard', 'limits', 'volume'} or k == {'size'} or (k & {'size'} and k & {'pool', 'format'}): r.append(('vm', 'c'))
    if k & {'network', 'model', 'mac', 'trunks'} or (k & {'bridge'} and not k & {'ports'}) : r += [('vm', 'd'), ('vm', 'e')]
    if k & {'vlan', 'mtu'} and not k & {'name', 'parent'}: r.append(('vm', 'e'))
    if k & {'timeout', 'force'} and 'command' not in k: r.append(('vm', 'g'))
    if 'iso' in k: r.append(('vm', 'h'))
    if 'command' in k: r.append(('ct', 'c'))
    if 'exit_code' in k: r.append(('ct', 'd'))
    if 'kind' in k: r.append(('ct', 'f'))
    if k & {'type', 'path', 'content'} and 'name' in k and not k & {'cpus', 'memory'}: r.append(('storage', 'a'))
    if 'name' in k and 'size' in k and not k & {'cpus', 'memory', 'bus'}: r.append(('storage', 'b'))
    if k == {'size'}: r.append(('storage', 'c'))
    if 'target' in k: r.append(('storage', 'd'))
    if k & {'ports', 'vlan_aware', 'vids', 'purpose', 'address', 'gateway'} and not k & {'members'}: r += [('net', 'a'), ('net', 'd')]
    if k & {'members', 'miimon', 'primary', 'xmit_hash_policy', 'add_members', 'remove_members'}: r += [('net', 'b'), ('net', 'e')]
    if k & {'add_ports', 'remove_ports'}: r.append(('net', 'd'))
    if 'parent' in k or 'id' in k: r += [('net', 'c'), ('net', 'f')]
    if k & {'bonds', 'bridges', 'vlans'}: r.append(('net', 'g'))
    if 'confirm_within' in k: r.append(('net', 'h'))
    if k & {'servers', 'pools', 'iburst', 'enable'}: r.append(('time', ''))
    if k & {'enabled', 'order', 'up', 'down', 'wait_for', 'wait_timeout', 'after'}: r.append(('autostart', 'a'))
    if k & {'boot_delay', 'max_parallel', 'retries', 'retry_delay'}: r.append(('autostart', 'b'))
    return r

seeds = {}
def add(target, data):
    if isinstance(data, str): data = data.encode()
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    h = hashlib.sha1(data).hexdigest()[:16]
    seeds.setdefault(target, set())
    if h in seeds[target]: return
    seeds[target].add(h)
    open(os.path.join(d, 'seed-' + h), 'wb').write(data)

for o in objs:
    for tgt, sel in classify(o):
        add(tgt + ('_json' if tgt in ('vm', 'ct', 'storage', 'net', 'time', 'autostart') else ''), sel + json.dumps(o, separators=(',', ':')))

# Hand-written: every selector of every target reached at least once, and the known-bad inputs
# of issue 12.
K = lambda t, s: add(t, s)
K('vm_json', 'a{"name":"a\xc3\xa9","cpus":1,"memory":"64M"}')
K('vm_json', 'a{"name":"evc","memory":"64M","cpu":{"mode":"cluster"}}')
K('vm_json', 'i{"name":"evc","memory":"64M","cpu":{"mode":"custom","model":"EPYC","vendor":"AMD","features":["+acpi","-vme"]}}')
K('vm_json', 'm{"cpu":{"mode":"custom","model":"Skylake-Server","features":["+avx512f","-hle"]}}')
K('vm_json', 'm{"cpu":{"mode":"host-passthrough"}}')
K('vm_json', b'a{"name":"a\xff","cpus":1,"memory":"64M"}')
K('vm_json', 'a{"name":"caf\u00e9","cpus":1,"memory":"64M"}')
K('vm_json', 'a{"name":"x","cpus":1e300,"memory":"64M"}')
K('vm_json', 'a{"name":"x","memory":"99999999999999999999999P"}')
K('vm_json', 'b{"cpus":4,"memory":"2G","description":"d","tags":["t1"]}')
K('vm_json', 'c{"size":"10G","bus":"scsi","limits":{"read_iops":500,"total_bps":"100M"}}')
K('vm_json', 'd{"bridge":"vmbr0","vlan":100,"trunks":"10;20-30","mtu":9000,"mac":"52:54:00:12:34:56"}')
K('vm_json', 'e{"vlan":200,"trunks":"10,20"}')
K('vm_json', 'f{"name":"web01","cpus":2,"memory":1073741824,"state":"running","interfaces":[{"name":"net0","vlans":[{"vid":1}]}]}')
K('vm_json', 'g{"timeout":60,"force":true}')
K('vm_json', 'g{"timeout":1e300}')
K('vm_json', 'g{"timeout":18446744073709551615}')
K('vm_json', 'h{"iso":"local:iso/debian-12.iso"}')
K('vm_json', 'h{"iso":"local:iso/\u00ff.iso"}')
RBD = '{"type":"network","protocol":"rbd","name":"vms/web01-disk0","hosts":[{"name":"10.0.0.1","port":6789},{"name":"fd00::2"}],"auth":{"username":"admin","secret_type":"ceph","secret_uuid":"3d5a5fe8-af8a-4739-b90f-ac54f21e1711"}}'
K('vm_json', 'i{"name":"web01","disks":[{"name":"disk0","format":"raw","pool":"ceph","volume":"web01-disk0","source":' + RBD + '}]}')
K('vm_json', 'i{"name":"web01","disks":[{"format":"raw","volume":"v","source":{"type":"network","protocol":"rbd","name":"a/b:c=d","hosts":[{"name":"h","port":99999}]}}]}')
K('vm_json', 'i{"name":"web01","disks":[{"format":"raw","volume":"v","source":{"type":"file","path":"/x","hosts":"h","auth":{"username":"a","secret_uuid":""}}}]}')
K('vm_json', 'c{"volume":"web01-disk0","source":' + RBD + '}')
K('vm_json', 'f{"name":"web01","disks":[{"name":"disk0","format":"raw","volume":"web01-disk0","source":' + RBD + '}],"state":"running"}')
K('ct_json', 'c{"command":["echo","hello"],"timeout":5}')
K('ct_json', 'c{"command":["sh","-c","true"],"timeout":-1e308}')
K('ct_json', 'd{"exit_code":0,"stdout":"hello\\n","stderr":"","timed_out":false}')
K('ct_json', 'e{"name":"app01","type":"container","state":"running","init_pid":42,"memory_limit":536870912}')
K('ct_json', 'f{"kind":"busybox","replace":true}')
K('ct_json', 'a{"name":"app01","template":"busybox","cpus":2,"memory":"512M","rootfs":{"pool":"local","size":"8G"},"nics":[{"network":"default"}]}')
K('storage_json', 'a{"name":"fast","type":"btrfs","path":"/srv/fast","content":["images","iso"]}')
K('storage_json', 'b{"name":"vm-web01-disk1","size":"20G","provision":"eager-zeroed","format":"raw"}')
K('storage_json', 'c{"size":"40G"}')
K('storage_json', 'c{"size":1.5}')
K('storage_json', 'd{"target":"copy01"}')
K('vm_json', 'j{"to":"h2","offline":false,"dry_run":true,"bandwidth":500,"max_downtime":300}')
K('vm_json', 'j{"to":"h2","with_local_disks":true,"postcopy":true,"max_downtime":300}')
K('vm_json', 'j{"to":"h2","offline":true,"postcopy":true}')
K('vm_json', 'k{"state":"started","group":"prefer-ab","max_restart":2,"max_relocate":1}')
K('vm_json', 'k{"state":"frozen","max_restart":99}')
K('vm_json', 'l{"name":"prefer-ab","hosts":{"a":2,"b":1},"restricted":true,"nofailback":false}')
K('vm_json', 'l{"name":"g","hosts":{"a":1e300}}')
K('storage_json', 'a{"name":"nfs","type":"dir","path":"/mnt/nfs","shared":true}')
K('storage_json', 'e{"network":"10.10.10.0/24","cluster_network":"10.10.20.0/24"}')
K('storage_json', 'f{"device":"/dev/sdb","db_device":"/dev/nvme0n1p1","zap":true}')
K('storage_json', 'g{"name":"vmpool","size":3,"min_size":2,"pg_num":32,"force":false,"add_storage":true}')
K('net_json', 'a{"name":"vmbr0","ports":["bond0"],"vlan_aware":true,"vids":"2-4094","mtu":9000,"address":"10.0.0.5/24","gateway":"10.0.0.1","purpose":"management"}')
K('net_json', 'b{"name":"bond0","mode":"802.3ad","members":["eth1","eth2"],"xmit_hash_policy":"layer3+4","miimon":100}')
K('net_json', 'c{"name":"bond0.100","parent":"bond0","id":100}')
K('net_json', 'd{"add_ports":["eth2"],"remove_ports":["eth1"],"vids":"100,200-210","mtu":1500}')
K('net_json', 'e{"add_members":["eth3"],"primary":"eth3","miimon":50}')
K('net_json', 'f{"mtu":1400}')
K('net_json', 'g{"bonds":[{"name":"bond0","members":["eth1"]}],"vlans":[],"bridges":[{"name":"vmbr0","ports":["bond0"]}]}')
K('net_json', 'h{"confirm_within":120}')
K('net_json', 'h{"confirm_within":1e30}')
K('time_json', '{"servers":["ntp1.example.org","192.0.2.1:1123","[2001:db8::1]:123"],"pools":["2.debian.pool.ntp.org"],"iburst":true}')
K('time_json', b'{"servers":[{"host":"\xff\xfe"}]}')
K('time_json', '{"servers":["a.example\\nserver evil.example"]}')
K('time_json', '{"enable":true}')
K('autostart_json', 'a{"enabled":true,"order":2,"up":30,"down":120,"wait_for":"tcp:22","wait_timeout":300,"after":["db01"]}')
K('autostart_json', 'a{"wait_for":"tcp:99999999999"}')
K('autostart_json', 'b{"boot_delay":10,"max_parallel":4,"retries":2,"retry_delay":10}')
K('autostart_json', 'c{"db01":{"enabled":true,"order":1,"wait_for":"tcp:5432"},"web01":{"enabled":true,"order":2,"after":["db01"],"up":30},"cache01":{"enabled":true}}')
K('autostart_json', 'c{"a":{"enabled":true,"after":["b"]},"b":{"enabled":true,"after":["a"]}}')
for s in ['a4G', 'a512M', 'a1.5G', 'a1T', 'a1024', 'a0', 'a1e9', 'a.5K', 'a18446744073709551616', 'a9' * 1 + '9' * 400, 'a1.2.3G', 'a4GiB', 'a4Gb', 'a-1G']:
    K('args', s)
for s in ['bsize=4G,bus=sata,format=raw,pool=local', 'bsize=20G,provision=eager-zeroed,mode=independent-persistent,cache=none,discard=on,read_iops=500',
          'bvolume=web01-disk0', 'bsize=1G,total_bps=100M,read_bps=1M', 'bsize=1G,read_iops=99999999999999999999999', 'b,,,', 'b=x',
          'cnetwork=default,model=virtio,mac=52:54:00:12:34:56', 'cbridge=vmbr0,vlan=100,trunks=10;20-30,mtu=9000', 'cbridge=vmbr0,vlan=99999999999',
          'dvlan=200,trunks=10;20', 'dmtu=1500', 'epool=local,size=8G', 'epool=fast', 'flocal:iso/debian-12.iso', 'flocal:web01-disk0',
          'glocal:iso/%FF.iso', 'g2-4094', 'g100,200-210', 'g4094-2', 'g1,1,1', 'h10.0.0.5/24', 'h2001:db8::1/64', 'h10.0.0.5/33',
          'intp1.example.org', 'i192.0.2.1:1123', 'i[2001:db8::1]:123', 'i[::1', 'jweb01', 'jcaf\u00e9', 'j..', 'j-lead']:
    K('args', s)
K('args', b'bpath=/srv/\xff.qcow2')
K('args', b'cnetwork=\xff')
K('args', b'jcaf\xc3')
# HTTP requests
def req(method, target, body=b'', extra=b''):
    if isinstance(body, str): body = body.encode()
    if isinstance(target, str): target = target.encode()
    h = method.encode() + b' ' + target + b' HTTP/1.1\r\nHost: hvd\r\n' + extra
    if body: h += b'Content-Type: application/json\r\nContent-Length: ' + str(len(body)).encode() + b'\r\n'
    return h + b'\r\n' + body
H = lambda *a, **k: add('http_request', req(*a, **k))
H('GET', '/v1/vms'); H('GET', '/v1/vms/web01'); H('GET', '/v1/vms/%FF%FE'); H('DELETE', '/v1/vms/x?purge=%FF')
H('DELETE', '/v1/vms/web01?purge=1'); H('DELETE', '/v1/vms/web01?purge=maybe')
H('POST', '/v1/vms', '{"name":"web01","cpus":2,"memory":"1G","disks":[{"size":"4G"}],"nics":[{"network":"default"}]}')
H('POST', '/v1/vms', b'{"name":"a\xff","cpus":1,"memory":"64M"}')
H('POST', '/v1/vms', '{"name":"caf\u00e9","cpus":1,"memory":"64M"}')
H('PUT', '/v1/time', b'{"servers":[{"host":"\xff\xfe"}]}')
H('PUT', '/v1/storage/pools/local/isos/%FF.iso', 'ISO', b'Expect: 100-continue\r\n')
H('PUT', '/v1/storage/pools/local/isos/debian-12.iso?replace=true', 'ISO')
H('GET', '/v1/storage/pools/local/volumes/vm-web01-disk1'); H('DELETE', '/v1/storage/pools/local/volumes/x?force=yes')
H('POST', '/v1/storage/pools/local/volumes', '{"name":"v1","size":"1G"}')
H('PATCH', '/v1/vms/web01', '{"cpus":4}'); H('POST', '/v1/vms/web01/shutdown', '{"timeout":60,"force":true}')
H('GET', '/v1/cts/app01/console?force=1', extra=b'Connection: Upgrade\r\nUpgrade: hv-console\r\n')
H('POST', '/v1/cts/app01/exec', '{"command":["echo","hi"]}')
H('GET', '/v1/events'); H('GET', '/v1/nothing-here'); H('PUT', '/v1/vms'); H('GET', '/v1/vms/..'); H('GET', '/v1/vms/a%2Fb')
H('GET', '/v1/net/nics?all'); H('GET', '/v1/tasks/12/log'); H('GET', '//v1//vms//web01//'); H('GET', '/v1/vms/%'); H('GET', '/v1/vms/%4'); H('GET', '/v1/vms/a+b?x=%zz&&=&y')
add('http_request', b'POST /v1/vms HTTP/1.1\r\nHost: hvd\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n')
add('http_request', b'GET /v1/vms HTTP/1.0\r\n\r\n')
add('http_request', b'GET /v1/vms HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n')
add('http_request', b'GET http://hvd/v1/vms HTTP/1.1\r\n\r\n')
# chrony: tracking \0 sources \0 sources file
ch = root + '/tests/data/chrony/'
tr_s = open(ch + 'tracking-synced.csv', 'rb').read(); tr_u = open(ch + 'tracking-unsynced.csv', 'rb').read(); so = open(ch + 'sources.csv', 'rb').read()
sf = b'# hv\nserver ntp1.example.org iburst\npool 2.debian.pool.ntp.org\nserver 192.0.2.1 port 1123\n'
for t in (tr_s, tr_u):
    add('chrony_csv', t + b'\0' + so + b'\0' + sf)
add('chrony_csv', tr_s); add('chrony_csv', b'\0' + so); add('chrony_csv', b'\0\0' + sf)
add('chrony_csv', tr_s.replace(b',', b',,', 1) + b'\0' + so.replace(b'^', b'\xff'))
add('chrony_csv', b'A,B,C,D,E,F,G,H,I,J,K,L,M,N\n\0^,*,x,1e999,377,0,0,0,0,0\n')
# config
# cgroup: /proc/PID/cgroup \0 memory.stat \0 memory.max, from the fixture trees of tests/data/cgroup
cg = root + '/tests/data/cgroup/'
def cgfile(p): return open(cg + p, 'rb').read()
v1dir = 'v1/sys/fs/cgroup/memory/machine/lxc-4241-web.libvirt-lxc/'
v2dir = 'v2/sys/fs/cgroup/machine.slice/machine-lxc\\x2d5150\\x2dweb.scope/'
add('cgroup', cgfile('v1/proc/4242/cgroup') + b'\0' + cgfile(v1dir + 'memory.stat') + b'\0' + cgfile(v1dir + 'memory.limit_in_bytes'))
add('cgroup', cgfile('v1/proc/4300/cgroup') + b'\0\0' + b'9223372036854771712\n')
add('cgroup', cgfile('v2/proc/5151/cgroup') + b'\0' + cgfile(v2dir + 'init.scope/memory.stat') + b'\0' + cgfile(v2dir + 'memory.max'))
add('cgroup', cgfile('v2/proc/6161/cgroup') + b'\0anon 1024\nfile 2048\n\0max\n')
add('cgroup', b'0::/machine.slice/../../etc\n3:memory\nx:cpu,,cpuacct:/a\n\0anon -1\n 5\nfile 99999999999999999999999\n\0 12 34')

add('config', open(root + '/etc/hvd.toml', 'rb').read())
add('config', '[daemon]\nsocket = "/tmp/hvd.sock"\nworkers = 4\n[libvirt]\naccel = "tcg"\nuri = "qemu:///system"\n[time]\nchronyc = "/usr/bin/chronyc"\n')
add('config', '[daemon]\nworkers = 99999999999999999999\n')
add('config', '[daemon]\nsocket = "relative"\n')
add('config', '[daemon.x]\n[[a]]\nb = 1979-05-27T07:32:00Z\n')
add('config', b'[daemon]\nsocket = "\xff"\n')
add('config', '[autostart]\nboot_delay = 10\nmax_parallel = 4\n[storage]\nimage_dir = "/srv/images"\n[containers]\ndebian_mirror = "http://deb.debian.org/debian"\n')
# etcd's JSON gateway: answers captured from a real etcd 3.4 (tests/data/etcd/capture.sh); the
# file name's first letter is the target's selector.
for f in sorted(glob.glob(root + '/tests/data/etcd/*.json')):
    add('etcd_json', os.path.basename(f)[0].encode() + open(f, 'rb').read())
add('etcd_json', 'k{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}')
add('etcd_json', 'k{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}')
add('etcd_json', 'j{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}')
add('etcd_json', 'a{"header":{"revision":"99999999999999999999"},"kvs":[{"key":"YQ="}]}')
add('etcd_json', 'l\x00\xff\x01binary')
# a txn's range answered out of key order (CI found it): the parser sorts it like a range
add('etcd_json', 'd{"header":{"revision":"7"},"succeeded":true,"responses":[{"response_range":{"header":{"revision":"7"},"kvs":[{"key":"Yg==","value":"","create_revision":"2","mod_revision":"2","version":"1"},{"key":"YQ==","value":"","create_revision":"3","mod_revision":"3","version":"1"}],"count":"2"}}]}')
# join tokens (decode_token): from the fixed certificates of tests/data/pki (its README), one
# valid token and near-misses of every check decode_token makes.
import base64, ssl
pk = root + '/tests/data/pki/'
def pem(n): return open(pk + n).read()
def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def fp(cert):
    h = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert)).hexdigest().upper()
    return ':'.join(h[i:i + 2] for i in range(0, len(h), 2))
TOK = {'cluster': 'lab', 'id': 'seed1', 'addresses': ['10.0.0.1:8443', '[fd00::2]:8443'], 'ca_fingerprint': fp(pem('ca.crt')),
       'expires': 1900000000, 'ca_pem': pem('ca.crt'), 'cert_pem': pem('join.crt'), 'key_pem': pem('join.key')}
def tok_text(payload): return 'hvjoin1.' + b64u(payload.encode() if isinstance(payload, str) else payload)
def tok(**edit):
    o = dict(TOK)
    for k, v in edit.items():
        if v is None: o.pop(k, None)
        else: o[k] = v
    return tok_text(json.dumps(o, sort_keys=True, separators=(',', ':')))
J = lambda t: add('join_token', t)
J(tok())
J(tok(addresses=['127.0.0.1:1']))
J('hvjoin1.'); J('hvjoin1'); J('hvjoin2.' + tok()[8:]); J(tok() + '='); J(tok()[:-1]); J(tok()[:-2]); J(tok().replace('-', '+', 1)); J('hvjoin1.QR'); J('hvjoin1.A')
J(tok_text('[]')); J(tok_text('{}')); J(tok_text('null')); J(tok_text('{"id":'))
for k in TOK: J(tok(**{k: None}))
J(tok(extra=1)); J(tok(**{'\u0001': 'x'}))
J(tok_text('{"id":"other",' + json.dumps(TOK, sort_keys=True, separators=(',', ':'))[1:]))
J(tok(cluster=5)); J(tok(id='')); J(tok(id='../x')); J(tok(cluster=''))
J(tok(addresses=[])); J(tok(addresses='10.0.0.1:8443')); J(tok(addresses=[1])); J(tok(addresses=['fd00::1:80', '10.0.0.1:0', '10.0.0.1:99999']))
J(tok(expires='1900000000')); J(tok(expires=1.5)); J(tok(expires=0)); J(tok(expires=-1)); J(tok(expires=18446744073709551615))
J(tok_text(json.dumps(TOK, sort_keys=True, separators=(',', ':')).replace('1900000000', '1.9e9')))
J(tok(ca_fingerprint=fp(pem('other-ca.crt')))); J(tok(ca_pem=pem('other-ca.crt'))); J(tok(ca_fingerprint=fp(pem('ca.crt')).lower()))
J(tok(ca_pem='-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')); J(tok(cert_pem=pem('ca.crt'))); J(tok(cert_pem='x'))
J(tok(key_pem=pem('stray.key'))); J(tok(key_pem='x')); J(tok(cluster='\u00e9t\u00e9')); J(tok(cluster='a\nb'))
J('hvjoin1.' + 'A' * 16384)
for t, s in sorted(seeds.items()): print(t, len(s))
# The TOML texts of the config unit tests.
for m in lit.finditer(open(root + '/tests/unit/config_test.cpp').read()):
    add('config', m.group(1))

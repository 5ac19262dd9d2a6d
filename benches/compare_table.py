#!/usr/bin/env python3
"""Turns the RESULT lines of compare.sh into markdown tables with ratios.

Usage: compare_table.py results.txt aes.txt
"""
import statistics
import sys


def parse(path):
    rows = []
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        row = {}
        for field in line.split()[1:]:
            k, _, v = field.partition("=")
            row[k] = v
        rows.append(row)
    return rows


def pick(rows, mode, label, protocol=None):
    return [
        r
        for r in rows
        if r.get("mode") == mode and r.get("label") == label and (protocol is None or r.get("protocol") == protocol)
    ]


def med(rows, key):
    vals = [float(r[key]) for r in rows if key in r]
    return statistics.median(vals) if vals else None


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def main():
    rows = parse(sys.argv[1])
    aes_line = open(sys.argv[2]).read().split()
    # "AES-256-GCM  ...k ...k": the last column is 16 KiB blocks, in 1000s of bytes/s.
    aes_kbps = float(aes_line[-1].rstrip("k")) if aes_line else None
    aes_s_per_gib = (1 << 30) / (aes_kbps * 1000) if aes_kbps else None

    hs = med(pick(rows, "handshake", "rustls-handshake"), "cpu_ms_per_login")
    print("### Login: CPU of the target per login (fresh TLS 1.3 handshake, X25519, ECDSA P-256)\n")
    print("| protocol | target | logins/s | p50 ms | p99 ms | CPU-ms/login | vs nginx | vs bare rustls handshake |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print(f"| – | bare rustls TLS 1.3 handshake (simulator) | – | – | – | {fmt(hs)} | – | 1.00× |")
    ng_imap = med(pick(rows, "login", "nginx", "imap"), "cpu_ms_per_login")
    for label, name in [
        ("direct-tls-cpu", "IMAPS server login, no proxy (simulator)"),
        ("floor", "floor proxy: tokio + rustls, no logic"),
    ]:
        rs = pick(rows, "login", label, "imap")
        if rs:
            cpu = med(rs, "cpu_ms_per_login")
            print(
                f"| imap | {name} | {fmt(med(rs, 'per_sec'), 0)} | {fmt(med(rs, 'p50_ms'))} | {fmt(med(rs, 'p99_ms'))} "
                f"| {fmt(cpu)} | {ratio(cpu, ng_imap)} | {ratio(cpu, hs)} |"
            )
    for proto in ["imap", "pop3", "smtp"]:
        ng = med(pick(rows, "login", "nginx", proto), "cpu_ms_per_login")
        for label in ["direct", "nginx", "pec-proxy", "pec-proxy-store"]:
            rs = pick(rows, "login", label, proto)
            if not rs:
                continue
            cpu = med(rs, "cpu_ms_per_login")
            name = {"direct": "direct upstream (simulator, plain)"}.get(label, label)
            print(
                f"| {proto} | {name} | {fmt(med(rs, 'per_sec'), 0)} | {fmt(med(rs, 'p50_ms'))} | {fmt(med(rs, 'p99_ms'))} "
                f"| {fmt(cpu)} | {ratio(cpu, ng) if label != 'direct' else '–'} | {ratio(cpu, hs) if label != 'direct' else '–'} |"
            )
    ng_r = med(pick(rows, "login", "nginx-resume", "imap"), "cpu_ms_per_login")
    pp_r = med(pick(rows, "login", "pec-proxy-resume", "imap"), "cpu_ms_per_login")
    ps_r = med(pick(rows, "login", "pec-proxy-store-resume", "imap"), "cpu_ms_per_login")
    print(f"| imap, resumed TLS | nginx | | | | {fmt(ng_r)} | 1.00× | |")
    print(f"| imap, resumed TLS | pec-proxy | | | | {fmt(pp_r)} | {ratio(pp_r, ng_r)} | |")
    print(f"| imap, resumed TLS | pec-proxy-store | | | | {fmt(ps_r)} | {ratio(ps_r, ng_r)} | |")

    print("\n### Login latency at moderate load (client-side, connect to tagged OK)\n")
    print("| protocol | direct p50 ms | nginx p50 ms | pec-proxy p50 ms | pec-proxy added p50 ms | pec-proxy-store p50 ms | pec-proxy p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for proto in ["imap", "pop3", "smtp"]:
        d = med(pick(rows, "login", "direct-latency", proto), "p50_ms")
        n = med(pick(rows, "login", "nginx-latency", proto), "p50_ms")
        p = med(pick(rows, "login", "pec-proxy-latency", proto), "p50_ms")
        s = med(pick(rows, "login", "pec-proxy-store-latency", proto), "p50_ms")
        p99 = med(pick(rows, "login", "pec-proxy-latency", proto), "p99_ms")
        added = None if p is None or d is None else p - d
        print(f"| {proto} | {fmt(d)} | {fmt(n)} | {fmt(p)} | {fmt(added)} | {fmt(s)} | {fmt(p99)} |")
    dt = med(pick(rows, "login", "direct-tls", "imap"), "p50_ms")
    p = med(pick(rows, "login", "pec-proxy-latency", "imap"), "p50_ms")
    if dt is not None and p is not None:
        print(f"| imap vs direct **TLS** | {fmt(dt)} | | {fmt(p)} | {fmt(p - dt)} | | |")

    print("\n### Bulk relay: CPU of the target per GiB (TLS to the client, plain loopback upstream)\n")
    print("| protocol | target | MiB/s | CPU-s/GiB | vs nginx | vs AES-256-GCM |")
    print("|---|---|---:|---:|---:|---:|")
    for proto in ["imap", "pop3"]:
        ng = med(pick(rows, "bulk", "nginx", proto), "cpu_s_per_gib")
        for label in ["direct", "direct-tls", "floor", "nginx", "pec-proxy"]:
            rs = pick(rows, "bulk", label, proto)
            if not rs:
                continue
            cpu = med(rs, "cpu_s_per_gib")
            name = {
                "direct": "direct (simulator, plain)",
                "direct-tls": "direct (simulator, TLS)",
                "floor": "floor proxy",
            }.get(label, label)
            print(
                f"| {proto} | {name} | {fmt(med(rs, 'mib_per_s'), 0)} | {fmt(cpu)} "
                f"| {ratio(cpu, ng) if not label.startswith('direct') else '–'} | {ratio(cpu, aes_s_per_gib)} |"
            )
    print(f"| – | `openssl speed -evp aes-256-gcm` (16 KiB blocks) | {fmt(aes_kbps / 1024 if aes_kbps else None, 0)} | {fmt(aes_s_per_gib)} | | 1.00× |")

    print("\n### Idle IMAPS sessions in IDLE\n")
    print("| target | sessions up | KiB/session | RSS after, MiB | NOOP p50 ms | NOOP p99 ms | CPU-ms/session opened | idle CPU-ms/s | vs nginx (KiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ng = med(pick(rows, "idle", "nginx"), "kib_per_session")
    for label in ["nginx", "pec-proxy"]:
        rs = pick(rows, "idle", label)
        if not rs:
            continue
        r = rs[-1]
        kib = float(r.get("kib_per_session", "nan"))
        print(
            f"| {label} | {r.get('sessions_up')} | {kib:.2f} | {int(r.get('rss_kib', 0)) / 1024:.0f} | {r.get('noop_p50_ms')} "
            f"| {r.get('noop_p99_ms')} | {r.get('cpu_ms_per_session_open', '–')} | {r.get('idle_cpu_ms_per_s', '–')} | {ratio(kib, ng)} |"
        )


if __name__ == "__main__":
    main()

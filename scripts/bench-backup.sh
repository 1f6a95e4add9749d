#!/usr/bin/env bash
# make bench: time backup.yml and restore.yml on an oc_pizza database of at
# least 500 MB, against a plain `mysqldump oc_pizza > /dev/null` of the same
# database taken in the same run. Not part of make test.
#
#   bash scripts/bench-backup.sh                   own hosts (molecule scenario "backup")
#   BENCH_TARGET=lab bash scripts/bench-backup.sh  the lab's ocpizza-db1 (site.yml applied)
#
# BENCH_MIN_MB (default 500): smallest database size (data + indexes) to test.
# BENCH_KEEP=1 keeps the molecule hosts afterwards (molecule destroy -s backup).
# The lab is left running; its bench table and bench backups are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH CONTAINERS_CONF=$PWD/lab/containers.conf
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0
export ANSIBLE_DEPRECATION_WARNINGS=0

target=${BENCH_TARGET:-molecule}
min_mb=${BENCH_MIN_MB:-500}
log=.ansible/logs/bench-backup.log
mkdir -p .ansible/logs
: >"$log"
say() { printf '%s\n' "$*" | tee -a "$log"; }

case $target in
molecule)
    db=ocpizza-mol-backup-db
    say "==> creating the bench hosts: molecule converge -s backup (log: $log)"
    molecule converge -s backup >>"$log" 2>&1
    inventory=$(ls -dt "$HOME"/.ansible/tmp/molecule.*.backup/inventory | head -n 1)
    cleanup() {
        if [[ ${BENCH_KEEP:-0} != 1 ]]; then molecule destroy -s backup >>"$log" 2>&1 || true; fi
    }
    ;;
lab)
    db=ocpizza-db1
    inventory=inventories/lab
    podman exec "$db" test -x /usr/bin/mariadb-dump ||
        { echo "bench: $db has no MariaDB: run 'make lab' and playbooks/site.yml first" >&2; exit 1; }
    cleanup() {
        podman exec "$db" mysql oc_pizza -e 'DROP TABLE IF EXISTS bench_payload' || true
        for id in "${bench_ids[@]}"; do podman exec "$db" rm -rf "/var/backups/ocpizza/$id"; done
        podman exec "$db" mysql -e "$(podman exec "$db" mysql -N -e \
            "SELECT CONCAT('DROP DATABASE \`', SCHEMA_NAME, '\`;') FROM information_schema.SCHEMATA
             WHERE SCHEMA_NAME LIKE 'oc\\_pizza\\_pre\\_restore\\_%'" | tr '\n' ' ')" || true
    }
    ;;
*) echo "bench: BENCH_TARGET must be molecule or lab" >&2; exit 2 ;;
esac
bench_ids=()
trap cleanup EXIT

sql() { podman exec -i "$db" mysql --batch --skip-column-names oc_pizza; }
seconds() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }

say "==> generating the oc_pizza.bench_payload table (>= $min_mb MB)"
sql <<'SQL'
-- A production-like buffer pool (the mysql role sizes it to 60 % of the RAM).
SET GLOBAL innodb_buffer_pool_size = GREATEST(@@innodb_buffer_pool_size, 1073741824);
DROP TABLE IF EXISTS bench_payload;
CREATE TABLE bench_payload (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  label VARCHAR(64) NOT NULL,
  body MEDIUMTEXT NOT NULL,
  data MEDIUMBLOB NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO bench_payload (label, body, data)
  SELECT 'seed', REPEAT(CONCAT(MD5(RAND()), ' pizza margherita, sauce tomate '), 40),
         RANDOM_BYTES(1024);
SQL
size_mb=0
while ((size_mb < min_mb)); do
    sql <<'SQL'
INSERT INTO bench_payload (label, body, data)
  SELECT CONCAT('row ', id), REPEAT(CONCAT(MD5(RAND()), ' pizza margherita, sauce tomate '), 40),
         RANDOM_BYTES(1024)
  FROM bench_payload;
SQL
    size_mb=$(sql <<'SQL'
ANALYZE TABLE bench_payload;
SELECT ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576) FROM information_schema.TABLES
WHERE TABLE_SCHEMA = 'oc_pizza';
SQL
)
    size_mb=$(tail -n 1 <<<"$size_mb")
done
rows=$(sql <<<'SELECT COUNT(*) FROM bench_payload')
say "    oc_pizza: $size_mb MB (data + indexes), bench_payload: $rows rows"

# The baseline runs before and after the backups; the ratio uses their mean
# (this box is shared, so one figure alone can be off).
baseline_run() {
    local t0 t1
    t0=$(seconds)
    podman exec "$db" bash -c 'mysqldump oc_pizza > /dev/null'
    t1=$(seconds)
    elapsed "$t0" "$t1"
}
say "==> baseline: mysqldump oc_pizza > /dev/null (on $db)"
baseline1=$(baseline_run)
say "    $baseline1 s"

say "==> ansible-playbook -i $inventory playbooks/backup.yml"
t0=$(seconds)
ansible-playbook -i "$inventory" playbooks/backup.yml >>"$log" 2>&1
t1=$(seconds)
backup_pb=$(elapsed "$t0" "$t1")
id=$(podman exec "$db" bash -c 'ls /var/backups/ocpizza | tail -n 1')
bench_ids+=("$id")
manifest=$(podman exec "$db" cat "/var/backups/ocpizza/$id/$id.manifest.json")
read -r dump_mb stored_mb < <(python3 -c '
import json, sys
m = json.loads(sys.argv[1])
print(round(m["dump_bytes"] / 2**20), round(m["compressed_bytes"] / 2**20))
' "$manifest")
say "    $backup_pb s ($dump_mb MB dumped, $stored_mb MB stored)"

say "==> the backup alone, on $db: ocpizza-backup backup (dump, compression, manifest, full verification)"
t0=$(seconds)
tool_id=$(podman exec "$db" /usr/local/sbin/ocpizza-backup backup --kind manual 2>/dev/null)
t1=$(seconds)
bench_ids+=("$tool_id")
backup_tool=$(elapsed "$t0" "$t1")
say "    $backup_tool s"

say "==> baseline again: mysqldump oc_pizza > /dev/null"
baseline2=$(baseline_run)
baseline=$(python3 -c "print(f'{($baseline1 + $baseline2) / 2:.1f}')")
say "    $baseline2 s (mean $baseline s)"

say "==> ansible-playbook -i $inventory playbooks/restore.yml -e backup=$id"
before=$(podman exec "$db" bash -c 'ls /var/backups/ocpizza')
t0=$(seconds)
ansible-playbook -i "$inventory" playbooks/restore.yml -e "backup=$id" -e keep_previous=false \
    >>"$log" 2>&1
t1=$(seconds)
restore_pb=$(elapsed "$t0" "$t1")
for new in $(comm -13 <(sort <<<"$before") <(podman exec "$db" bash -c 'ls /var/backups/ocpizza' | sort)); do
    bench_ids+=("$new")
done
say "    $restore_pb s (verify, safety backup, load into a scratch database, check, switch)"

ratio_pb=$(python3 -c "print(f'{$backup_pb / $baseline:.1f}')")
ratio_tool=$(python3 -c "print(f'{$backup_tool / $baseline:.1f}')")
say ""
say "Benchmark (BENCH_TARGET=$target, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
say "  database                         $size_mb MB (data + indexes), $rows rows in bench_payload"
say "  baseline mysqldump > /dev/null   $baseline s (mean of $baseline1 s before and $baseline2 s after)"
say "  backup.yml (whole playbook)      $backup_pb s   ratio $ratio_pb x baseline"
say "  ocpizza-backup backup alone      $backup_tool s   ratio $ratio_tool x baseline"
say "  restore.yml (whole playbook)     $restore_pb s"
say "  command: bash scripts/bench-backup.sh   (make bench)"

#!/usr/bin/python
"""Ansible module: the droplets, VPC, firewalls, SSH keys and tags of one environment."""

from __future__ import annotations

DOCUMENTATION = r"""
module: digitalocean_environment
short_description: Ensure the DigitalOcean droplets of an OC Pizza environment exist or are absent
description:
  - Makes one environment (for example C(staging)) of the OC Pizza platform exist on
    DigitalOcean, or removes it. An environment is a VPC, one cloud firewall per inventory
    group, the SSH keys installed on the droplets, the tags that identify everything, and
    the droplets of each group (database, application and web servers).
  - Idempotent. Every resource is identified by its name and tags and created only when it
    is missing, so a second run changes nothing, and a run that follows an interrupted one
    finishes the job instead of creating a second droplet. Two droplets sharing a name stop
    the module; it never creates a duplicate, never guesses which one to delete.
  - Droplets are named C(<project>-<environment>-<prefix><n>) and carry the tags
    C(<project>), C(env:<environment>), C(group:<group>) and C(<project>-<environment>-<group>).
    The inventory plugin C(ocpizza_digitalocean) reads the same tags.
  - Region, sizes and images are checked against the account's catalogue before anything is
    created; an unknown one is named in the error and nothing is changed.
  - After creating droplets the module waits until all are C(active), with a deadline, and
    returns their public and private (VPC) addresses.
  - In check mode the module reads the account and returns the plan (what would be created,
    changed or destroyed) and the monthly cost computed from the sizes' prices.
  - With O(load_balancer), the environment also has a DigitalOcean Load Balancer in front of
    one group's droplets; see O(load_balancer).
  - With O(state=absent) the module deletes the environment's droplets, load balancer,
    firewalls, VPC and environment-specific tags, and only when O(confirm_destroy) repeats
    the environment name (check mode excepted). SSH keys are left in place, since other
    environments may use the same keys.
version_added: "1.0.0"
author: OC Pizza operations
requirements:
  - python-digitalocean >= 1.17 on the control node (the module runs on C(localhost)).
options:
  environment:
    description: Name of the environment, for example C(staging) or C(production).
    type: str
    required: true
  project:
    description: Project name, the first part of every resource name and a tag of every droplet.
    type: str
    default: ocpizza
  state:
    description: Whether the environment should exist or be removed.
    type: str
    choices: [present, absent]
    default: present
  confirm_destroy:
    description:
      - Must equal O(environment) for O(state=absent) to delete anything.
    type: str
  oauth_token:
    description:
      - DigitalOcean API token (read and write scopes).
      - Defaults to the environment variable E(DIGITALOCEAN_TOKEN), then
        E(DIGITALOCEAN_ACCESS_TOKEN).
    type: str
    aliases: [api_token]
  api_url:
    description:
      - Base URL of the DigitalOcean API.
      - Defaults to the environment variable E(DIGITALOCEAN_END_POINT), then the public API.
        The tests point it at a local fake API.
    type: str
    default: https://api.digitalocean.com/v2/
  region:
    description:
      - Region slug of the VPC and of every droplet, for example C(fra1).
      - Required when O(state=present).
    type: str
  image:
    description: Default image slug of the droplets; a group may name its own.
    type: str
    default: ubuntu-24-04-x64
  vpc:
    description: The environment's VPC.
    type: dict
    default: {}
    suboptions:
      name:
        description: VPC name; defaults to C(<project>-<environment>).
        type: str
      ip_range:
        description: Private range in CIDR notation; DigitalOcean picks a free one when omitted.
        type: str
      description:
        description: Free text shown in the control panel.
        type: str
        default: ""
  groups:
    description:
      - The inventory groups and their droplets. Required when O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Inventory group, for example C(dbservers).
        type: str
        required: true
      hostname_prefix:
        description: Short name in the droplet names; defaults to the group name without C(servers).
        type: str
      count:
        description: How many droplets the group has.
        type: int
        default: 1
      size:
        description: Droplet size slug, for example C(s-4vcpu-8gb).
        type: str
        required: true
      image:
        description: Image slug for this group; defaults to O(image).
        type: str
      firewall_allowed:
        description:
          - The group's host firewall policy, in the shape of role C(firewall)'s
            C(firewall_allowed) (C(group_vars/<group>/firewall.yml)), turned into rules of
            the group's cloud firewall, so that one policy feeds both firewalls.
          - C(from_group) allows the droplets of that group (by their selector tag);
            C(sources) allows those addresses, C(any) or no C(sources) meaning everyone,
            an empty list nobody.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Name of the service.
            type: str
            required: true
          port:
            description: Destination port.
            type: int
            required: true
          proto:
            description: Protocol.
            type: str
            choices: [tcp, udp]
            default: tcp
          from_group:
            description: Inventory group of the same environment whose droplets may connect.
            type: str
          sources:
            description: Addresses or CIDRs that may connect, or C(any).
            type: list
            elements: str
          from_load_balancer:
            description:
              - Admit the environment's load balancer (its id, C(load_balancer_uids)) when
                O(load_balancer) is set, and anyone otherwise.
            type: bool
            default: false
      firewall_egress:
        description:
          - The group's outbound policy, in the shape of role C(firewall)'s C(firewall_egress)
            (C(firewall_egress_common) + C(firewall_egress) + C(firewall_egress_extra)), turned
            into the outbound rules of the group's cloud firewall, so that the cloud firewall
            lets out what the host's output chain lets out.
          - C(to_group) allows the droplets of that group (by their selector tag); C(to_group=all)
            the droplets of every group of O(groups); C(destinations) those addresses or CIDRs,
            C(any) meaning C(0.0.0.0/0) and C(::/0), an empty list nowhere. Each entry takes one
            of the two. ICMP may go anywhere besides; replies to inbound connections need no
            rule (cloud firewalls are stateful). Identical rules are sent once.
          - Omitted, the group's cloud firewall allows all outbound traffic (what
            C(playbooks/provision.yml) sends for a group whose C(firewall_egress_enabled) is
            false). An empty list lets out ICMP only.
          - A bad entry (both or neither of C(to_group) and C(destinations), a port outside
            1-65535, an address that is not one, a group not in O(groups)) stops the module
            before any API call, with a message that names the group and the entry.
        type: list
        elements: dict
        suboptions:
          name:
            description: Name of the flow, used in error messages.
            type: str
            required: true
          port:
            description: Destination port (1-65535).
            type: int
            required: true
          proto:
            description: Protocol.
            type: str
            choices: [tcp, udp]
            default: tcp
          to_group:
            description:
              - Group of O(groups) whose droplets may be reached, or C(all) for every group's.
            type: str
          destinations:
            description:
              - Addresses or CIDRs that may be reached, or C(any). C(0.0.0.0/0) is IPv4 only,
                C(::/0) IPv6 only, as in the host firewall.
            type: list
            elements: str
      firewall_inbound:
        description:
          - More inbound rules of the group's cloud firewall, in the cloud's own terms, after
            those of O(groups[].firewall_allowed) and O(ssh_sources). Everything else inbound
            is refused; outbound, see O(groups[].firewall_egress).
        type: list
        elements: dict
        default: []
        suboptions:
          protocol:
            description: Protocol.
            type: str
            choices: [tcp, udp, icmp]
            default: tcp
          ports:
            description: A port, a range such as C(8000-8010), or C(all). Ignored for C(icmp).
            type: raw
          sources:
            description:
              - Where the traffic may come from. C(addresses) is a list of CIDRs; C(groups)
                is a list of group names of the same environment (their droplets, by tag).
            type: dict
            required: true
  load_balancer:
    description:
      - The environment's DigitalOcean Load Balancer, named C(<project>-<environment>-lb), in
        the environment's region and VPC. Omitted, the environment has none (and an existing
        one is left alone until O(state=absent)).
      - Created when missing; when its forwarding rules, health check, target tag, PROXY
        protocol or size differ from these, it is updated in place. Its monthly cost
        (DigitalOcean's price per size unit) is part of the plan.
      - Every value is checked before any API call; an error names
        C(ocpizza_do_load_balancer) and the field.
    type: dict
    suboptions:
      target_group:
        description: The group (of O(groups)) whose droplets receive the connections, by tag.
        type: str
        required: true
      size_unit:
        description: Number of nodes (1-100); each is billed.
        type: raw
        default: 1
      forwarding_rules:
        description:
          - What the load balancer listens on and where it sends it. C(tcp) to C(tcp)
            passes TLS through untouched (the droplets hold the certificate).
        type: list
        elements: dict
        required: true
        suboptions:
          entry_protocol:
            description: C(tcp), C(http), C(https), C(http2), C(http3) or C(udp).
            type: str
            required: true
          entry_port:
            description: Port the load balancer listens on (1-65535).
            type: raw
            required: true
          target_protocol:
            description: Protocol towards the droplets; defaults to the entry protocol.
            type: str
          target_port:
            description: Port of the droplets; defaults to the entry port.
            type: raw
          tls_passthrough:
            description: Pass HTTPS through (only with an C(https) entry).
            type: bool
            default: false
      health_check:
        description:
          - How a droplet is judged healthy. With the PROXY protocol on, DigitalOcean sends
            the PROXY header on health checks too.
        type: dict
        required: true
        suboptions:
          protocol: {description: C(http), C(https) or C(tcp)., type: str, required: true}
          port: {description: Port of the droplets that is checked., type: raw, required: true}
          path: {description: Path of an HTTP(S) check., type: str}
          check_interval_seconds:
            description: Seconds between two checks (default 10).
            type: raw
          response_timeout_seconds:
            description: Seconds to wait for an answer (default 5).
            type: raw
          healthy_threshold:
            description: Successes in a row that make a droplet healthy (default 5).
            type: raw
          unhealthy_threshold:
            description: Failures in a row that make it unhealthy (default 3).
            type: raw
      enable_proxy_protocol:
        description: Send the PROXY protocol (v1) header, so the droplets see the client's address.
        type: bool
        default: true
      redirect_http_to_https:
        description: Answer HTTP with a redirect to HTTPS at the load balancer.
        type: bool
        default: false
  ssh_sources:
    description:
      - Networks (CIDRs) allowed to reach SSH on every droplet, like role C(firewall)'s
        C(firewall_ssh_sources). Empty adds no SSH rule.
    type: list
    elements: str
    default: []
  ssh_port:
    description: The SSH port that O(ssh_sources) may reach.
    type: int
    default: 22
  ssh_keys:
    description:
      - Public keys installed for C(root) on every new droplet. A key already on the account
        (same fingerprint) is reused, whatever its name.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name shown in the control panel.
        type: str
        required: true
      public_key:
        description: The public key itself (C(ssh-ed25519 AAAA... comment)).
        type: str
      public_key_file:
        description: A file on the control node holding the public key.
        type: path
  tags:
    description: Extra tags for every droplet.
    type: list
    elements: str
    default: []
  monitoring:
    description: Install DigitalOcean's monitoring agent.
    type: bool
    default: true
  ipv6:
    description: Give the droplets a public IPv6 address too.
    type: bool
    default: false
  backups:
    description: Enable DigitalOcean's weekly droplet backups (they cost 20% of the droplet price).
    type: bool
    default: false
  user_data:
    description: Cloud-init user data for new droplets.
    type: str
  wait:
    description: Wait until every droplet is active (and, with O(state=absent), gone).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the droplets before failing. A rerun goes on waiting.
    type: int
    default: 600
  poll_interval:
    description: Seconds between two polls while waiting.
    type: float
    default: 5
  request_timeout:
    description: Seconds after which an API request that got no answer fails.
    type: float
    default: 30
  max_retries:
    description: Retries of a request refused with HTTP 429 or failing transiently, with backoff.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: Reads the account and returns the plan and its cost; changes nothing.
  diff_mode:
    support: none
notes:
  - Every call goes through python-digitalocean, with a timeout, retries of rate limits and
    transient errors (backoff) and status-aware errors added by the package
    C(module_utils/ocpizza_digitalocean/), which holds all the module's logic.
seealso:
  - name: DigitalOcean API reference
    description: The API this module calls.
    link: https://docs.digitalocean.com/reference/api/
"""

EXAMPLES = r"""
- name: Ensure the staging droplets exist
  digitalocean_environment:
    environment: staging
    region: fra1
    ssh_keys:
      - name: ocpizza-admin
        public_key_file: ~/.ssh/id_ed25519.pub
    ssh_sources: [203.0.113.0/24]
    groups:
      - name: dbservers
        size: s-4vcpu-8gb
        firewall_allowed:
          - {name: mysql from app, port: 3306, from_group: appservers}
        firewall_egress:
          - {name: dns, port: 53, proto: udp, destinations: [any]}
          - {name: apt mirrors, port: 443, destinations: [any]}
      - name: appservers
        size: s-2vcpu-4gb
        firewall_allowed:
          - {name: gunicorn from web, port: 8000, from_group: webservers}
        firewall_egress:
          - {name: dns, port: 53, proto: udp, destinations: [any]}
          - {name: mysql on the database servers, port: 3306, to_group: dbservers}
      - name: webservers
        size: s-2vcpu-4gb
        firewall_allowed:
          - {name: http, port: 80}
          - {name: https, port: 443}
        firewall_inbound:
          - {protocol: udp, ports: 443, sources: {addresses: [0.0.0.0/0, "::/0"]}}
  register: staging

- name: Show the plan of a dry run
  ansible.builtin.debug:
    var: staging.plan_lines

- name: Remove the staging environment
  digitalocean_environment:
    environment: staging
    state: absent
    confirm_destroy: staging
"""

RETURN = r"""
plan:
  description: Every step, done or (in check mode) planned.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description:
        - C(create), C(update), C(delete), C(keep), or C(wait) (an existing droplet is not
          active yet).
      type: str
    kind:
      description: C(droplet), C(vpc), C(firewall), C(load_balancer), C(ssh_key) or C(tags).
      type: str
    name:
      description: Resource name.
      type: str
    detail:
      description: What, in a few words.
      type: str
    price_monthly:
      description:
        - Monthly price in USD of a droplet or load balancer created, updated or deleted,
          else null.
      type: float
  sample:
    - {action: create, kind: droplet, name: ocpizza-staging-db1,
       detail: "dbservers, s-4vcpu-8gb, ubuntu-24-04-x64, fra1", price_monthly: 48.0}
plan_lines:
  description: The plan as lines of text, ending with the monthly cost.
  returned: always
  type: list
  elements: str
  sample:
    - "create droplet ocpizza-staging-db1 (dbservers, s-4vcpu-8gb, ubuntu-24-04-x64, fra1):
      $48.00/month"
    - "monthly cost: $96.00 (+$48.00/month from this run)"
monthly_cost:
  description:
    - Monthly price in USD of the environment's droplets and load balancer once the plan is
      carried out.
  returned: always
  type: float
  sample: 96.0
monthly_cost_change:
  description: How much this run adds to (or, negative, removes from) the monthly cost.
  returned: always
  type: float
  sample: 48.0
droplets:
  description:
    - The environment's droplets, sorted by name. With O(state=present) and O(wait=true) all
      are active with their addresses; with O(state=absent) these are the droplets deleted.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: Droplet id., type: int}
    name: {description: Droplet name (the inventory host name)., type: str}
    status: {description: Droplet status., type: str}
    tags: {description: Droplet tags., type: list, elements: str}
    size_slug: {description: Size slug., type: str}
    region: {description: Region slug., type: str}
    image: {description: Image slug., type: str}
    vpc_uuid: {description: VPC id., type: str}
    public_ipv4: {description: Public address (C(ansible_host) in the inventory)., type: str}
    private_ipv4: {description: VPC address (C(ocpizza_private_ip) in the inventory)., type: str}
    public_ipv6: {description: Public IPv6 address, when enabled., type: str}
    created_at: {description: Creation time., type: str}
droplet_lines:
  description: One line per droplet of RV(droplets), with its status and both addresses.
  returned: always
  type: list
  elements: str
  sample:
    - "ocpizza-staging-db1: active, public 203.0.113.10, private 10.110.16.2"
created:
  description: Names of the droplets created (or, in check mode, to create).
  returned: always
  type: list
  elements: str
deleted:
  description: Names of the droplets deleted (or, in check mode, to delete).
  returned: always
  type: list
  elements: str
vpc:
  description: The VPC (id, name, region, ip_range).
  returned: when O(state=present) and the VPC exists
  type: dict
firewalls:
  description: The cloud firewalls (id, name).
  returned: when O(state=present), not in check mode
  type: list
  elements: dict
load_balancer:
  description: The load balancer (id, name, status, ip, size_unit, region, tag).
  returned: when O(load_balancer) is set and the load balancer exists
  type: dict
load_balancer_lines:
  description: One line with the load balancer's status and address (empty without one).
  returned: always
  type: list
  elements: str
  sample:
    - "load balancer ocpizza-staging-lb: active, ip 203.0.113.5 (the site's DNS A record
      points here)"
ssh_key_ids:
  description: Account ids of the SSH keys installed on new droplets.
  returned: when O(state=present), not in check mode
  type: list
  elements: int
api_retries:
  description: How many API requests were retried (rate limits, transient errors).
  returned: always
  type: int
"""

from ansible.module_utils.ocpizza_digitalocean.module_args import main

if __name__ == "__main__":
    main()

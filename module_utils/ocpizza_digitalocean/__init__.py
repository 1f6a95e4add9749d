"""DigitalOcean code shared by the OC Pizza module and inventory plugin.

``library/digitalocean_environment.py`` (the module, shipped to the host by
Ansible) and ``inventory_plugins/ocpizza_digitalocean.py`` (the inventory
plugin, on the controller) both import this package as
``ansible.module_utils.ocpizza_digitalocean``. One concern per module:

* :mod:`.errors`: the exceptions, each with a message for operators;
* :mod:`.naming`: names, tags and patterns that the module and the plugin
  must agree on, and where the API token is read from;
* :mod:`.transport`: python-digitalocean with a timeout on every request,
  retries with backoff on 429 and transient failures, and typed errors;
* :mod:`.client`: the few API calls of this project, returning plain data;
* :mod:`.spec`: what an environment should look like, and its validation;
* :mod:`.firewall`: cloud firewall bodies, their comparison, and the rules
  derived from the host firewall policy (``firewall_allowed``);
* :mod:`.loadbalancer`: the load balancer's spec, checks, API body and comparison;
* :mod:`.load_balancing`: the load balancer's part of a run (find by name, plan,
  create or update, wait);
* :mod:`.plan`: the plan of a run, its text and its cost;
* :mod:`.state`: the environment's droplets by name, and waiting for them;
* :mod:`.reconciler`: read what exists, create only what is missing, wait;
* :mod:`.teardown`: delete an environment;
* :mod:`.module_args`: the module's arguments turned into a spec, and its run.

Naming, shared with the inventory plugin so both agree:

* droplets are named ``<project>-<environment>-<prefix><n>`` (``ocpizza-staging-db1``);
* every droplet carries the tags ``<project>`` (managed by this project),
  ``env:<environment>``, ``group:<inventory group>`` and the selector tag
  ``<project>-<environment>-<group>`` that the group's cloud firewall targets
  and that other groups' firewall rules name as a source;
* the VPC is ``<project>-<environment>``, the firewalls are
  ``<project>-<environment>-<group>`` and the load balancer is
  ``<project>-<environment>-lb``; it targets the selector tag of its group.

Modules of this package import one another relatively, so that Ansible's
module packager (AnsiballZ) finds and ships every one the module needs.
"""

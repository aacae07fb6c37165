"""Capacity planning: staffing math (:mod:`.erlang`), observed demand (:mod:`.demand`) and
staffing advice (:mod:`.advice`) per queue (vendor + language) and half-hour of the week."""

"""The stream contract: what the poller writes and the service reads.

``snapshots`` (the snapshot stream's entries), ``alerts`` (the alerts stream's), ``envelope``
(how an entry's payload is wrapped, written and read in one place), ``wire`` (JSON with exact
money) and ``zones`` (the API's time zone spellings the snapshots are read with). It imports
nothing of either role's code: both roles import it.
"""

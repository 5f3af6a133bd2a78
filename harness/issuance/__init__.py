"""Bulk issuance (``mynacard issue``): the batch's personas, the engine and its command line."""

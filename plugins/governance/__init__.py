"""Governance plugins: who may call (`keys`), how often and how much (`limits`), at what cost
(`budgets`). They share the key records (`records`), the errors (`errors`), token estimates
(`estimate`) and batched settlement (`settle`) of this package, and keep their state in the
gateway's state store."""

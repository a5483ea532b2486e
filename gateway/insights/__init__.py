"""Delivery insights from the orders' stored facts (`gateway.store.facts`): delivery-date
estimates (estimates.py) and courier scorecards (scorecards.py)."""

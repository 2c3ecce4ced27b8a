from django.urls import path

from shop import views

urlpatterns = [
    path("greeting/", views.greeting, name="greeting"),
    path("categories/", views.categories, name="categories"),
    path("products/", views.product_list, name="product-list"),
    path("products/best-sellers/", views.best_sellers, name="best-sellers"),
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
    path("stats/", views.stats, name="stats"),
    path("orders/", views.create_order, name="order-create"),
    path("orders/<str:number>/", views.order_detail, name="order-detail"),
    path("orders/<str:number>/status/", views.order_status, name="order-status"),
    path("reports/sales/", views.sales_report, name="sales-report"),
    path("settings/language/", views.site_language, name="site-language"),
]
